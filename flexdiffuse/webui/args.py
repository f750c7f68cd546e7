"""The script's arguments, as the panel and the HTTP API send them, read into one request.

A1111 passes an always-visible script the values of its ``ui()`` components, in order: the
enable switch, the first guidance image, one value per :data:`~flexdiffuse.params.PARAM_SPECS`
entry, then the other image inputs (:data:`ARG_NAMES`). API clients send the same list in
``alwayson_scripts``, or a single object naming the values (``{"image": "<base64>",
"linear": 0.4}``). Nothing here imports A1111.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..params import PARAM_SPECS, GuidanceParams
from .errors import FlexDiffuseError

IMAGE_SLOTS: tuple[str, ...] = ("image", "image_2", "image_3", "image_4")
"""The guidance image inputs, in order. Their image tokens are candidates together."""

NEGATIVE_SLOT = "negative_image"
"""The input of the image that guides the negative prompt."""

ARG_NAMES: tuple[str, ...] = (
    "enabled",
    IMAGE_SLOTS[0],
    *(spec.name for spec in PARAM_SPECS),
    *IMAGE_SLOTS[1:],
    NEGATIVE_SLOT,
)
"""The script's arguments in ``ui()`` order (new inputs go last, so older API clients' lists
keep working); also the keys of the API's object form."""

IMAGE_INPUTS: tuple[str, ...] = (*IMAGE_SLOTS, NEGATIVE_SLOT)

WEIGHT_PARAMS: dict[str, str] = {
    spec.group: spec.name for spec in PARAM_SPECS if spec.group in IMAGE_INPUTS
}
"""The weight parameter of each image input (the spec whose group is the input)."""


def weight_of(params: GuidanceParams, slot: str) -> float:
    """The weight of image input ``slot`` in ``params``."""
    return getattr(params, WEIGHT_PARAMS[slot])


MAX_IMAGE_PIXELS = 64_000_000
"""Largest guidance image accepted; the tower sees it at 224 pixels anyway."""

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=-]+)*;base64,", re.IGNORECASE)


@dataclass(frozen=True)
class GuidanceRequest:
    """What one job asks of FlexDiffuse: images by input name (those given) and parameters."""

    enabled: bool
    images: Mapping[str, Image.Image]
    params: GuidanceParams

    def guidance_images(self) -> list[tuple[Image.Image, float]]:
        """The guidance images that guide (weight above 0), in order, with their weights."""
        present = [slot for slot in IMAGE_SLOTS if slot in self.images]
        weighted = [(self.images[slot], weight_of(self.params, slot)) for slot in present]
        return [(image, weight) for image, weight in weighted if weight > 0]

    @property
    def negative_image(self) -> Image.Image | None:
        """The image the negative prompt is guided toward, if it guides (weight above 0)."""
        image = self.images.get(NEGATIVE_SLOT)
        return image if image is not None and weight_of(self.params, NEGATIVE_SLOT) > 0 else None


def parse_script_args(args: Sequence[Any]) -> GuidanceRequest:
    """Read the script's arguments (positional, or one object with named values).

    Values that are missing take their defaults. A disabled request is not read further, so
    stale panel values never fail a job that does not use them.

    Raises:
        FlexDiffuseError: an unknown name, an unreadable image or an out-of-range value.
    """
    values = _named_values(args)
    enabled = _read_enabled(values.get("enabled", False))
    if not enabled:
        return GuidanceRequest(False, {}, GuidanceParams())
    images = {}
    for slot in IMAGE_INPUTS:
        image = read_image(values.pop(slot, None), slot)
        if image is not None:
            images[slot] = image
    values.pop("enabled", None)
    return GuidanceRequest(True, images, make_params(values))


def make_params(values: Mapping[str, Any], base: GuidanceParams | None = None) -> GuidanceParams:
    """``base`` (default: the defaults) with ``values`` applied, or a clear error."""
    try:
        return (base or GuidanceParams()).replace(**values)
    except ValueError as error:
        raise FlexDiffuseError(f"{error} Set it in the FlexDiffuse panel or the request.") from None


def read_image(value: Any, slot: str = IMAGE_SLOTS[0]) -> Image.Image | None:
    """The image of input ``slot`` from what the panel or an API client sent, or None.

    Accepts a PIL image, an image array, a gradio image dict (``{"image": ...}``), or a
    base64 string, bare or as a ``data:`` URL.

    Raises:
        FlexDiffuseError: undecodable data, or an image over :data:`MAX_IMAGE_PIXELS`; the
            message names the input.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, Mapping) and "image" in value:
        return read_image(value["image"], slot)
    name = describe_slot(slot)
    if isinstance(value, Image.Image):
        image = value
    elif isinstance(value, np.ndarray):
        image = _from_array(value, name)
    elif isinstance(value, str):
        image = _from_base64(value, name)
    else:
        raise FlexDiffuseError(
            f"The {name} must be an image or a base64-encoded image file, got "
            f"{type(value).__name__}."
        )
    _check_size(image, name)
    return image


def describe_slot(slot: str) -> str:
    """How messages name image input ``slot``: "guidance image", "guidance image 2", ..."""
    if slot == NEGATIVE_SLOT:
        return "negative image"
    number = IMAGE_SLOTS.index(slot) + 1
    return "guidance image" if number == 1 else f"guidance image {number}"


def _named_values(args: Sequence[Any]) -> dict[str, Any]:
    if args and isinstance(args[0], Mapping):
        values = dict(args[0])
        values.setdefault("enabled", True)
        unknown = sorted(set(values) - set(ARG_NAMES))
        if unknown:
            raise FlexDiffuseError(
                f"Unknown FlexDiffuse argument(s) {', '.join(map(repr, unknown))}; the known "
                f"names are {', '.join(ARG_NAMES)}."
            )
        return values
    return dict(zip(ARG_NAMES, args, strict=False))  # A1111 fills trailing defaults


def _read_enabled(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FlexDiffuseError(f"The FlexDiffuse enable switch must be true or false, got {value!r}.")


def _from_array(array: np.ndarray, name: str) -> Image.Image:
    try:
        return Image.fromarray(array)
    except (TypeError, ValueError) as error:
        raise FlexDiffuseError(
            f"The {name} array of shape {array.shape} and type {array.dtype} is not an "
            f"image ({error}). Send height x width (x channels) 8-bit values."
        ) from None


def _from_base64(text: str, name: str) -> Image.Image:
    # Clients wrap long base64 lines; whitespace is never part of the data.
    payload = re.sub(r"\s+", "", _DATA_URL.sub("", text.strip(), count=1))
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise FlexDiffuseError(
            f"The {name} is not valid base64. Send the image file's bytes base64-encoded, "
            "optionally as a data URL (data:image/png;base64,...)."
        ) from None
    try:
        image = Image.open(io.BytesIO(data))
        _check_size(image, name)  # before decoding pixels: the header alone gives the size
        image.load()
    except UnidentifiedImageError:
        raise FlexDiffuseError(
            f"The {name} could not be read as an image: the decoded data is not an image "
            "file. Send a PNG, JPEG or WebP file, base64-encoded."
        ) from None
    except (OSError, Image.DecompressionBombError) as error:
        raise FlexDiffuseError(
            f"The {name} could not be read as an image: {error}. Send a complete PNG, JPEG "
            "or WebP file, base64-encoded."
        ) from None
    return image


def _check_size(image: Image.Image, name: str) -> None:
    if image.width < 1 or image.height < 1:
        raise FlexDiffuseError(f"The {name} is empty ({image.width}x{image.height}).")
    if image.width * image.height > MAX_IMAGE_PIXELS:
        raise FlexDiffuseError(
            f"The {name} is {image.width}x{image.height} pixels, more than the "
            f"{MAX_IMAGE_PIXELS / 1e6:g} megapixels FlexDiffuse accepts. Downscale it: the "
            "vision model sees it at 224 pixels anyway."
        )
