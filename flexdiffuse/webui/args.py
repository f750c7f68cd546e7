"""The script's arguments, as the panel and the HTTP API send them, read into one object.

A webui passes an always-visible script the values of its ``ui()`` components in order
(:data:`ARG_NAMES`). API clients send the same list in ``alwayson_scripts``, or a single object
naming the values (``{"image": "<base64>", "linear": 0.4}``), which may also name a preset
(``{"preset": "Strong: matches and style", "linear": 0.3}``: the preset's values first, then the
values named). Nothing here imports the webui.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..images import KEEP_SIDE, GuidanceImage
from ..params import IMAGE_SLOTS, JobParams, read_bool
from ..presets import job_params
from ..references import Reference
from .errors import FlexDiffuseError, as_sentence
from .reference_masks import GuidanceMask, mask_input, read_mask, upright_size

GUIDANCE_INPUTS: tuple[str, ...] = IMAGE_SLOTS
"""The guidance image inputs, in order. Their image tokens are candidates together."""

NEGATIVE_INPUT = "negative_image"
"""The input of the image that guides the negative prompt."""

IMAGE_INPUTS: tuple[str, ...] = (*GUIDANCE_INPUTS, NEGATIVE_INPUT)

IMAGE_WEIGHTS: dict[str, str] = {
    "image": "image_weight",
    "image_2": "image_2_weight",
    "image_3": "image_3_weight",
    "image_4": "image_4_weight",
    NEGATIVE_INPUT: "negative_weight",
}
"""The weight parameter of each image input."""

REFERENCE_INPUTS: dict[str, str] = {slot: f"{slot}_reference" for slot in GUIDANCE_INPUTS}
"""The argument naming the saved reference of each guidance image slot (its menu)."""

NO_REFERENCE = "None"
"""The reference menus' entry for "no reference: use the slot's image"."""

FIRST_ARG_NAMES: tuple[str, ...] = (
    "enabled",
    "image",
    "threshold_mult",
    "threshold_floor",
    "clustered",
    "linear",
    "max_guidance",
    "order",
    "reuse",
    "concepts",
    "concept_threshold",
    "start",
    "end",
    "pooled",
    "image_weight",
    "image_2_weight",
    "image_3_weight",
    "image_4_weight",
    "negative_weight",
    "image_2",
    "image_3",
    "image_4",
    "negative_image",
)
"""The positional API as 0.1 shipped it: API clients send these positions, so they never move."""

MASK_INPUTS: dict[str, str] = {name: mask_input(name) for name in GUIDANCE_INPUTS}
"""The mask argument of each guidance image input (see :mod:`.reference_masks`)."""

LATER_ARG_NAMES: tuple[str, ...] = (
    "strength",
    "auto_floor",
    *(f"{name}_recipe" for name in GUIDANCE_INPUTS),
    *REFERENCE_INPUTS.values(),
    *MASK_INPUTS.values(),
)
"""The arguments added since :data:`FIRST_ARG_NAMES`, in the order they came: a new one is
appended here (a test checks that every parameter is an argument), so a positional list that
works today keeps working."""

ARG_NAMES: tuple[str, ...] = FIRST_ARG_NAMES + LATER_ARG_NAMES
"""The script's arguments in ``ui()`` order: the positional API."""

PRESET_NAME = "preset"
"""The name under which the object form may name a preset (:mod:`flexdiffuse.presets`). It is
not positional: a positional request gives every value explicitly, so a preset there could
only be ignored or silently override them; the panel's preset menu sets the sliders instead."""

MAX_IMAGE_PIXELS = 64_000_000
"""Largest guidance image accepted; the tower sees it at 224 pixels anyway."""

_DATA_URL = re.compile(r"^data:(?P<type>[\w/+.-]*)(?P<params>(;[\w=-]+)*),", re.IGNORECASE)


@dataclass(frozen=True)
class SlotReference:
    """The saved reference an image slot names; ``reference`` (and its file's ``hash``) once
    read from its file (:func:`~.references.read_references`)."""

    name: str
    hash: str = ""
    reference: Reference | None = None


@dataclass(frozen=True)
class ScriptArgs:
    """The script's arguments, read: the switch, the images given (by input) and parameters,
    and the saved references named (by guidance image slot; a slot's reference replaces its
    image)."""

    enabled: bool
    images: Mapping[str, GuidanceImage]
    params: JobParams
    references: Mapping[str, SlotReference] = field(default_factory=dict)
    masks: Mapping[str, GuidanceMask] = field(default_factory=dict)
    """The guidance images' masks by image input (absent: no mask)."""

    def weight(self, name: str) -> float:
        """The weight of image input ``name``."""
        return self.params.get(IMAGE_WEIGHTS[name])

    def recipe(self, name: str) -> str:
        """The recipe of guidance image input ``name`` (``"job"``: the job's own settings)."""
        return self.params.get(f"{name}_recipe")

    def guidance_slots(self) -> list[str]:
        """The guidance image slots that guide (an image or a reference, weight above 0)."""
        return [
            name
            for name in GUIDANCE_INPUTS
            if (name in self.images or name in self.references) and self.weight(name) > 0
        ]

    def guidance_images(self) -> list[tuple[GuidanceImage, float]]:
        """The guidance images that guide (weight above 0, no reference in their slot), in
        order, with their weights."""
        return [
            (self.images[name], self.weight(name))
            for name in self.guidance_slots()
            if name not in self.references
        ]

    @property
    def negative_image(self) -> GuidanceImage | None:
        """The image the negative prompt is guided toward, if it guides (weight above 0)."""
        image = self.images.get(NEGATIVE_INPUT)
        return image if image is not None and self.weight(NEGATIVE_INPUT) > 0 else None


def parse_script_args(args: Sequence[Any]) -> ScriptArgs:
    """Read the script's arguments (positional, or one object with named values).

    Values that are missing take their defaults, or the named preset's values. A disabled
    request is not read further, so stale panel values never fail a job that does not use
    them.

    Raises:
        FlexDiffuseError: an unknown name or preset, an unreadable image or an out-of-range
            value.
    """
    values = _named_values(args)
    enabled = read_enabled(values.pop("enabled", False))
    if not enabled:
        return ScriptArgs(False, {}, JobParams())
    images, masks = {}, {}
    for name in IMAGE_INPUTS:
        decoded = decode_image(values.pop(name, None), describe_input(name))
        if decoded is not None:
            images[name] = GuidanceImage.from_pil(decoded)
        if name in MASK_INPUTS:
            size = upright_size(decoded) if decoded is not None else None
            mask = read_mask(
                values.pop(MASK_INPUTS[name], None), describe_input(name), size, _decode
            )
            if mask is not None:
                masks[name] = mask
    references = {}
    for slot, name in REFERENCE_INPUTS.items():
        reference = read_reference_name(values.pop(name, None), slot)
        if reference is not None:
            references[slot] = SlotReference(reference)
    preset = values.pop(PRESET_NAME, None)
    read_preset(preset)
    params = make_params(values, preset=preset)
    return ScriptArgs(True, images, params, references, masks)


def read_reference_name(value: Any, slot: str = "image") -> str | None:
    """The name of the saved reference given for guidance image ``slot``, or None (nothing,
    an empty text or :data:`NO_REFERENCE`).

    Raises:
        FlexDiffuseError: a value that is no text.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise FlexDiffuseError(
            f"The saved reference of {describe_input(slot)} ({REFERENCE_INPUTS[slot]}) must be "
            f"the name of a reference, got {type(value).__name__}."
        )
    name = value.strip()
    return None if name in ("", NO_REFERENCE) else name


def read_preset(name: Any) -> JobParams:
    """The defaults with preset ``name`` applied (None or empty: the defaults).

    Raises:
        FlexDiffuseError: an unknown preset, naming the presets there are.
    """
    try:
        return job_params({}, name)
    except ValueError as error:
        raise FlexDiffuseError(f"FlexDiffuse: {error}") from None


def make_params(
    values: Mapping[str, Any], base: JobParams | None = None, preset: str | None = None
) -> JobParams:
    """``values`` over ``base``, or over preset ``preset`` (the core's rule,
    :func:`flexdiffuse.presets.job_params`: named values win), or a clear error."""
    try:
        if base is not None:
            return base.replace(**values)
        return job_params(values, preset)
    except ValueError as error:
        raise FlexDiffuseError(f"{error} Set it in the FlexDiffuse panel or the request.") from None


def read_enabled(value: Any) -> bool:
    """The enable switch, read by the same rule as every boolean parameter."""
    enabled = read_bool(value)
    if enabled is None:
        raise FlexDiffuseError(
            f"The FlexDiffuse enable switch must be true or false, got {value!r}."
        )
    return enabled


def read_image(value: Any, name: str = "image") -> GuidanceImage | None:
    """The image of input ``name`` from what the panel or an API client sent, or None.

    Accepts a PIL image, an image array, a gradio image dict (``{"image": ...}``), or a
    base64 string, bare or as a ``data:`` URL. The image is hashed once and reduced to what
    the vision towers need (see :class:`~flexdiffuse.images.GuidanceImage`).

    Raises:
        FlexDiffuseError: undecodable data, or an image over :data:`MAX_IMAGE_PIXELS`; the
            message names the input.
    """
    image = decode_image(value, describe_input(name))
    return GuidanceImage.from_pil(image) if image is not None else None


def decode_image(value: Any, label: str) -> Image.Image | None:
    """The picture in what the panel or an API client sent for an image input (see
    :func:`read_image`), or None; ``label`` names the input in messages."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Mapping) and "image" in value:
        return decode_image(value["image"], label)
    return _decode(value, label)


def _decode(value: Any, label: str) -> Image.Image:
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        image = _from_array(value, label)
    elif isinstance(value, str):
        image = _from_base64(value, label)
    else:
        raise FlexDiffuseError(
            f"The {label} must be an image or a base64-encoded image file, got "
            f"{type(value).__name__}."
        )
    _check_size(image, label)
    return image


def describe_input(name: str) -> str:
    """How messages name image input ``name``: "guidance image", "guidance image 2", ..."""
    if name == NEGATIVE_INPUT:
        return "negative image"
    number = GUIDANCE_INPUTS.index(name) + 1
    return "guidance image" if number == 1 else f"guidance image {number}"


def _named_values(args: Sequence[Any]) -> dict[str, Any]:
    if args and isinstance(args[0], Mapping):
        values = dict(args[0])
        values.setdefault("enabled", True)
        unknown = sorted(set(values) - {*ARG_NAMES, PRESET_NAME})
        if unknown:
            raise FlexDiffuseError(
                f"Unknown FlexDiffuse argument(s) {', '.join(map(repr, unknown))}; the known "
                f"names are {', '.join(ARG_NAMES)} and {PRESET_NAME}."
            )
        return values
    return dict(zip(ARG_NAMES, args, strict=False))  # the webui fills trailing defaults


def _from_array(array: np.ndarray, label: str) -> Image.Image:
    try:
        return Image.fromarray(array)
    except (TypeError, ValueError) as error:
        raise FlexDiffuseError(
            f"The {label} array of shape {array.shape} and type {array.dtype} is not an "
            f"image ({error}). Send height x width (x channels) 8-bit values."
        ) from None


def _from_base64(text: str, label: str) -> Image.Image:
    text = text.strip()
    url = _DATA_URL.match(text)
    if url is not None:
        if ";base64" not in url.group("params").lower():
            raise FlexDiffuseError(
                f"The {label} is a data URL without ';base64': FlexDiffuse reads base64 data "
                "URLs only. Send data:image/png;base64,<the file's bytes, base64-encoded>."
            )
        text = text[url.end() :]
    # Clients wrap long base64 lines; whitespace is never part of the data.
    payload = re.sub(r"\s+", "", text)
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FlexDiffuseError(
            f"The {label} is not valid base64. Send the image file's bytes base64-encoded, "
            "optionally as a data URL (data:image/png;base64,...)."
        ) from None
    try:
        image = Image.open(io.BytesIO(data))
        _check_size(image, label)  # before decoding pixels: the header alone gives the size
        # JPEG can decode at 1/2, 1/4 or 1/8 scale: never decode more than is kept.
        image.draft("RGB", (KEEP_SIDE, KEEP_SIDE))
        image.load()
    except UnidentifiedImageError:
        raise FlexDiffuseError(
            f"The {label} could not be read as an image: the decoded data is not an image "
            "file. Send a PNG, JPEG or WebP file, base64-encoded."
        ) from None
    # Truncated files fail in the format's own reader: OSError mostly, ValueError or
    # EOFError for some headers (a PPM file's "P1" alone).
    except (OSError, ValueError, EOFError, Image.DecompressionBombError) as error:
        raise FlexDiffuseError(
            f"The {label} could not be read as an image: {as_sentence(error)} Send a complete "
            "PNG, JPEG or WebP file, base64-encoded."
        ) from None
    return image


def _check_size(image: Image.Image, label: str) -> None:
    if image.width < 1 or image.height < 1:
        raise FlexDiffuseError(f"The {label} is empty ({image.width}x{image.height}).")
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise FlexDiffuseError(
            f"The {label} is {image.width}x{image.height} pixels, more than the "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels FlexDiffuse accepts. Downscale it: the "
            "vision model sees it at 224 pixels anyway."
        )
