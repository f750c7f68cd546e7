"""Building a job's guidance from the loaded checkpoint, the settings and the request."""

from __future__ import annotations

import torch
from PIL import Image

from ..engine import CHUNK
from ..guidance import ImageGuidance, TowerGuidance
from ..params import GuidanceParams
from . import host
from .args import NEGATIVE_SLOT, GuidanceRequest, weight_of
from .conds import token_states
from .errors import FlexDiffuseError
from .families import SDXL, VIT_BIGG, Family, Slot, detect_family
from .job import JobGuidance
from .models import TowerPlacement, VisionTowers

VISION_TOWERS = VisionTowers()
"""The vision towers of this webui process (kept across jobs and UI reloads)."""


def build_guidance(request: GuidanceRequest, width: int) -> JobGuidance:
    """The guidance ``request`` asks for: its images through the family's towers, concepts
    encoded. ``width`` is the width of the loaded checkpoint's conditioning.

    A job builds it once, when its first batch starts sampling (its prompts are encoded then).

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, a vision model that does not fit
            the checkpoint, or a mapping-concepts prompt over one chunk.
        ModelLoadError: a vision model that cannot be loaded.
    """
    host.check_host()
    family = detect_family(host.sd_model())
    _check_width(width, family)
    params = request.params
    slots = guided_slots(family)
    _check_pooled(params, family, slots)
    placement = TowerPlacement(
        *host.tower_device_and_dtype(),
        download_dir=host.download_dir(),
        keep_loaded=bool(host.option(host.KEEP_LOADED, True)),
    )
    images = request.guidance_images()
    negative_image = request.negative_image
    # Each tower encodes all of the job's images in one go (loaded once, even if not kept).
    everything = [image for image, _ in images] + ([negative_image] if negative_image else [])
    encoded = {slot: _encode(slot, everything, placement, family) for slot in slots if everything}
    prompt = negative = None
    if images:
        concepts = _encode_concepts(params.concepts)
        weights = [weight for _, weight in images]
        towers = tuple(
            _tower(slot, encoded[slot][: len(images)], weights, concepts) for slot in slots
        )
        prompt = ImageGuidance(params, towers, _pooled_image(params, towers, slots, weights))
    if negative_image is not None:
        weights = [weight_of(params, NEGATIVE_SLOT)]
        towers = tuple(_tower(slot, encoded[slot][-1:], weights, None) for slot in slots)
        negative = ImageGuidance(params, towers)
    if not placement.keep_loaded:
        host.free_memory()
    return JobGuidance(prompt, negative)


def guided_slots(family: Family) -> tuple[Slot, ...]:
    """The slots of ``family`` that the settings ask to guide."""
    if family is SDXL and host.option(host.SDXL_VIT_L_ONLY, False):
        return family.slots[:1]
    return family.slots


def tower_source(slot: Slot) -> str:
    """The Hugging Face id, folder or file set for the slot's tower (default: its id)."""
    return str(host.option(slot.tower.setting, "") or "").strip() or slot.tower.default_model


def _check_pooled(params: GuidanceParams, family: Family, slots: tuple[Slot, ...]) -> None:
    if not params.pooled:
        return
    if family is not SDXL:
        raise FlexDiffuseError(
            f"Pooled image guidance works with SDXL checkpoints only; set it to 0 for this "
            f"{family.name} checkpoint."
        )
    if all(slot.tower is not VIT_BIGG for slot in slots):
        raise FlexDiffuseError(
            "Pooled image guidance needs the ViT-bigG vision model: turn off 'SDXL: guide only "
            "the ViT-L part' in Settings > FlexDiffuse, or set pooled image guidance to 0."
        )


def _encode(
    slot: Slot, images: list[Image.Image], placement: TowerPlacement, family: Family
) -> list[torch.Tensor]:
    """Every image's tokens from the slot's tower, checked to fit the slot."""
    source = tower_source(slot)
    encoded = VISION_TOWERS.encode(source, images, placement)
    width = encoded[0].shape[-1]
    if width != slot.tower.width:
        raise FlexDiffuseError(
            f"The CLIP vision model '{source}' gives image tokens of width {width}, but "
            f"{family.name} needs a {slot.tower.label} vision model (width "
            f"{slot.tower.width}). In Settings > FlexDiffuse, set the {slot.tower.label} model "
            f"to such a model (default: {slot.tower.default_model})."
        )
    return encoded


def _tower(
    slot: Slot,
    encoded: list[torch.Tensor],
    weights: list[float],
    concepts: torch.Tensor | None,
) -> TowerGuidance:
    """The slot's guidance by the images ``encoded``, each token weighted by its image."""
    token_weights = None
    if any(weight != 1 for weight in weights):  # all 1 is the spec's exact path
        token_weights = torch.cat(
            [torch.full((len(t),), w) for t, w in zip(encoded, weights, strict=True)]
        )
    concept = concepts[:, slot.start : slot.stop] if concepts is not None else None
    return TowerGuidance(slot.start, torch.cat(encoded), concept, token_weights)


def _pooled_image(
    params: GuidanceParams,
    towers: tuple[TowerGuidance, ...],
    slots: tuple[Slot, ...],
    weights: list[float],
) -> torch.Tensor | None:
    """The images' pooled bigG embedding (projected class token), weighted, for SDXL."""
    if not params.pooled:
        return None
    tower = next(t for t, s in zip(towers, slots, strict=True) if s.tower is VIT_BIGG)
    counts = [len(tower.image_tokens) // len(weights)] * len(weights)
    classes = torch.stack([tokens[0] for tokens in tower.image_tokens.split(counts)])
    mix = torch.tensor(weights, dtype=classes.dtype, device=classes.device).unsqueeze(-1)
    return (classes * mix).sum(0) / mix.sum()


def _check_width(width: int, family: Family) -> None:
    if width != family.width:
        raise FlexDiffuseError(
            f"This {family.name} checkpoint conditions on width {width}, not "
            f"{family.name}'s {family.width}, so FlexDiffuse has no vision model for it (an "
            "SDXL refiner or a custom text encoder?). Disable FlexDiffuse for this checkpoint."
        )


def _encode_concepts(text: str) -> torch.Tensor | None:
    if not text.strip():
        return None
    tokens = token_states(host.encode_prompt(text))
    if tokens.shape[0] > CHUNK:
        raise FlexDiffuseError(
            f"The mapping concepts prompt is {tokens.shape[0] // CHUNK} chunks long; it must fit "
            "in one (75 tokens). Name only the image concepts to map, e.g. 'dog, sunset'."
        )
    return tokens
