"""Building a job's guides from the loaded checkpoint, the settings and the script's args."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import torch

from ..encoder import ModelLoadError
from ..guides import (
    Advice,
    EncodedPart,
    GuideError,
    ImageTokens,
    check_concepts,
    check_pooled,
    negative_guide,
    prompt_guide,
)
from ..images import GuidanceImage
from ..known_towers import KnownTower
from ..masks import MaskError
from ..references import ReferenceError, reference_images
from . import settings
from .args import ScriptArgs, describe_input
from .conds import token_states
from .errors import FlexDiffuseError
from .families import SDXL, SDXL_REFINER, ConditioningPart, Family, detect_family
from .hosts import Host
from .job import JobGuides
from .reference_masks import mask_error
from .runtime import Runtime
from .vision_towers import TowerPlacement, TowerProgress


@dataclass(frozen=True)
class CheckpointInputs:
    """What a job's guides take from the loaded checkpoint: its family, the parts to guide,
    the encoded mapping-concepts prompt (None: no concepts) and the encoded empty prompt (to
    recognise an empty prompt by its states, ``guides.is_empty_prompt``)."""

    family: Family
    parts: tuple[ConditioningPart, ...]
    concepts: torch.Tensor | None
    empty_prompt: torch.Tensor | None = None


def _load_tower_advice(tower: KnownTower) -> str:
    return (
        f"In Settings > FlexDiffuse, set the {tower.label} model to such a model (default: "
        f"{tower.default_source})"
    )


WEBUI_ADVICE = Advice(
    add_bigg="turn off 'SDXL: guide only the ViT-L part' in Settings > FlexDiffuse",
)
"""What the webui tells a user to do where the fix is one of its settings."""


def build_guides(args: ScriptArgs, width: int, runtime: Runtime) -> JobGuides:
    """The guides ``args`` asks for: its images through the family's towers, concepts encoded.

    ``width`` is the width of the loaded checkpoint's conditioning. A job builds them when
    its first batch starts sampling (its prompts are encoded then), and again if the
    checkpoint changes during the job.

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, a vision model that does not fit
            or cannot be loaded, or a mapping-concepts prompt over one chunk.
    """
    return encode_guides(args, checkpoint_inputs(args, width, runtime), runtime)


def checkpoint_inputs(args: ScriptArgs, width: int, runtime: Runtime) -> CheckpointInputs:
    """The part of building guides that uses the loaded checkpoint (and nothing slow else).

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, or concepts over one chunk.
    """
    host = runtime.host
    if host.unsupported:
        raise FlexDiffuseError(host.unsupported)
    family = detect_family(host.sd_model(), width)
    _check_width(width, family)
    parts = guided_parts(runtime, family)
    concepts = empty = None
    with _as_job_errors():
        if args.guidance_slots():
            check_pooled(args.params, family, parts, WEBUI_ADVICE)
            concepts = _encode_concepts(runtime, args.params.concepts)
            empty = token_states(host.encode_prompt(""))
    return CheckpointInputs(family, parts, concepts, empty)


@contextmanager
def _as_job_errors() -> Iterator[None]:
    """The core's refusals as the webui's job error."""
    try:
        yield
    except (GuideError, ReferenceError) as error:
        raise FlexDiffuseError(str(error)) from None


def encode_guides(args: ScriptArgs, inputs: CheckpointInputs, runtime: Runtime) -> JobGuides:
    """The guides from the images' tokens (vision towers loaded as needed; a slot's saved
    reference gives its tokens without one) and ``inputs``.

    Raises:
        FlexDiffuseError: a vision model that does not fit or cannot be loaded, or a saved
            reference made without the tower the checkpoint needs.
    """
    host, params, parts = runtime.host, args.params, inputs.parts
    placement = tower_placement(host)
    # Towers no tower setting names any more (a setting changed for this request only, or a
    # file found on disk now resolves the default) go before any other loads.
    runtime.towers.retain(settings.sources_in_use(host))
    images = [image for image, _ in args.guidance_images()]
    negative_image = args.negative_image
    # Each tower encodes all of the job's images in one go (loaded once, even if not kept).
    everything = images + ([negative_image] if negative_image else [])
    encoded = {
        part: encode_images(runtime, part, everything, placement, inputs.family)
        for part in parts
        if everything
    }
    guiding = bool(args.guidance_slots()) or negative_image is not None
    with _as_job_errors():
        rows = [
            EncodedPart(
                part,
                _slot_tokens(args, part, encoded.get(part, []), placement),
                encoded[part][-1] if negative_image is not None else None,
            )
            for part in (parts if guiding else ())
        ]
        prompt = prompt_guide(params, rows, inputs.concepts)
        negative = negative_guide(params, rows)
    if everything and (not placement.keep_loaded or placement.park is not None):
        host.free_memory()
    return JobGuides(prompt, negative, inputs.empty_prompt)


def _slot_tokens(
    args: ScriptArgs, part: ConditioningPart, encoded: list[torch.Tensor], at: TowerPlacement
) -> list[ImageTokens]:
    """Each guiding slot's tokens from the part's tower, in slot order: an image's as the
    tower encoded it (``encoded``, in order) with its mask's keep, a saved reference's as
    saved (with its saved masks; the slot's painted mask belongs to the image it replaces),
    placed as the tower's would be (so both give the same pixels).

    Raises:
        ReferenceError: a reference made without the part's tower.
        FlexDiffuseError: a mask the core refuses.
    """
    made = iter(encoded)
    tokens: list[ImageTokens] = []
    for slot in args.guidance_slots():
        weight, recipe = args.weight(slot), args.params.get(f"{slot}_recipe")
        ref = args.references.get(slot)
        if ref is None:
            image = next(made)
            tokens.append(ImageTokens(image, weight, recipe, mask_keep(args, slot, len(image))))
            continue
        assert ref.reference is not None, "a job's references are read before it starts"
        tokens += [
            replace(image, tokens=image.tokens.to(at.device, at.dtype))
            for image in reference_images(ref.reference, part.tower, weight, recipe)
        ]
    return tokens


def mask_keep(args: ScriptArgs, slot: str, tokens: int) -> torch.Tensor | None:
    """The token keep of ``slot``'s mask for an image of ``tokens`` tokens (None: no mask).

    Raises:
        FlexDiffuseError: a mask the core refuses (its message, naming the image).
    """
    mask = args.masks.get(slot)
    if mask is None:
        return None
    try:
        return mask.keep(tokens)
    except MaskError as error:
        raise mask_error(describe_input(slot), error) from None


def tower_placement(host: Host) -> TowerPlacement:
    """Where the settings put vision towers on this host, and how they are kept."""
    device, dtype = host.tower_device_and_dtype(settings.towers_on_cpu(host))
    return TowerPlacement(
        device,
        dtype,
        download_dir=settings.download_dir(host),
        keep_loaded=settings.keep_loaded(host),
        park=host.tower_park(device),
        make_room=lambda size: host.make_room(size, device),
    )


def guided_parts(runtime: Runtime, family: Family) -> tuple[ConditioningPart, ...]:
    """The parts of ``family``'s conditioning that the settings ask to guide."""
    if not settings.sdxl_vit_l_only(runtime.host):
        return family.parts
    if family is SDXL:
        return family.parts[:1]
    if family is SDXL_REFINER:  # the setting leaves the refiner's only part out
        raise FlexDiffuseError(
            f"This {family.name} checkpoint is guided by {family.towers} alone, which 'SDXL: "
            "guide only the ViT-L part' leaves out. Turn that setting off in Settings > "
            "FlexDiffuse to guide it, or disable FlexDiffuse for this checkpoint."
        )
    return family.parts


def encode_images(
    runtime: Runtime,
    part: ConditioningPart,
    images: list[GuidanceImage],
    placement: TowerPlacement,
    family: Family,
) -> list[torch.Tensor]:
    """Every image's tokens from the part's tower, checked to fit the part.

    The job's progress text says what is loaded, downloaded and encoded, and Interrupt or
    Skip stops a download or load.
    """
    host, tower = runtime.host, part.tower
    source = settings.source_to_load(host, tower)
    progress = TowerProgress(host.set_progress_text, host.stop_requested)
    try:
        encoded = runtime.towers.encode(source, images, placement, tower.label, progress)
    except ModelLoadError as error:
        raise FlexDiffuseError(str(error)) from error
    finally:
        host.set_progress_text(None)
    width = encoded[0].shape[-1]
    if width != tower.token_width:
        raise FlexDiffuseError(
            f"The CLIP vision model '{source}' gives image tokens of width {width}, but "
            f"{family.name} needs a {tower.label} vision model (width "
            f"{tower.token_width}). {_load_tower_advice(tower)}."
        )
    return encoded


def _check_width(width: int, family: Family) -> None:
    if width != family.width:
        raise FlexDiffuseError(
            f"This {family.name} checkpoint conditions on width {width}, not "
            f"{family.name}'s {family.width}, so FlexDiffuse has no vision model for it (an "
            "SDXL refiner or a custom text encoder?). Disable FlexDiffuse for this checkpoint."
        )


def _encode_concepts(runtime: Runtime, text: str) -> torch.Tensor | None:
    if not text.strip():
        return None
    return check_concepts(token_states(runtime.host.encode_prompt(text)))
