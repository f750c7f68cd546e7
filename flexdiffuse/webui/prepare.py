"""Building a job's guidance from the loaded checkpoint, the settings and the request."""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from ..guidance import ImageGuidance, TowerGuidance
from ..params import GuidanceParams
from . import host
from .conds import cond_rows
from .errors import FlexDiffuseError
from .families import SDXL, VIT_BIGG, Family, Slot, detect_family
from .models import TowerPlacement, VisionTowers

CHUNK = 77

VISION_TOWERS = VisionTowers()
"""The vision towers of this webui process (kept across jobs and UI reloads)."""


def build_guidance(p: Any, params: GuidanceParams, image: Image.Image) -> ImageGuidance:
    """The guidance of job ``p``: its image through the family's towers, its concepts encoded.

    Runs once per job, when its first batch starts sampling (prompts are encoded by then).

    Raises:
        FlexDiffuseError: an unsupported host or checkpoint, a vision model that does not fit
            the checkpoint, or a mapping-concepts prompt over one chunk.
        ModelLoadError: a vision model that cannot be loaded.
    """
    host.check_host()
    family = detect_family(host.sd_model())
    _check_width(p, family)
    concepts = _encode_concepts(params.concepts)
    placement = TowerPlacement(
        *host.tower_device_and_dtype(),
        download_dir=host.download_dir(),
        keep_loaded=bool(host.option(host.KEEP_LOADED, True)),
    )
    slots = guided_slots(family)
    _check_pooled(params, family, slots)
    towers = []
    for slot in slots:
        tokens = _image_tokens(slot, image, placement, family)
        concept = concepts[:, slot.start : slot.stop] if concepts is not None else None
        towers.append(TowerGuidance(slot.start, tokens, concept))
    if not placement.keep_loaded:
        host.free_memory()
    pooled = None
    if params.pooled:  # the bigG tower's projected class token: its first image token
        pooled = next(
            t.image_tokens[0] for t, s in zip(towers, slots, strict=True) if s.tower is VIT_BIGG
        )
    return ImageGuidance(params, tuple(towers), pooled)


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


def _image_tokens(
    slot: Slot, image: Image.Image, placement: TowerPlacement, family: Family
) -> torch.Tensor:
    source = tower_source(slot)
    tokens = VISION_TOWERS.image_tokens(source, image, placement)
    if tokens.shape[-1] != slot.tower.width:
        raise FlexDiffuseError(
            f"The CLIP vision model '{source}' gives image tokens of width {tokens.shape[-1]}, "
            f"but {family.name} needs a {slot.tower.label} vision model (width "
            f"{slot.tower.width}). In Settings > FlexDiffuse, set the {slot.tower.label} model "
            f"to such a model (default: {slot.tower.default_model})."
        )
    return tokens


def _check_width(p: Any, family: Family) -> None:
    _, cond = next(cond_rows(p.c, None))
    tensor = cond["crossattn"] if isinstance(cond, dict) else cond
    if tensor.shape[-1] != family.width:
        raise FlexDiffuseError(
            f"This {family.name} checkpoint conditions on width {tensor.shape[-1]}, not "
            f"{family.name}'s {family.width}, so FlexDiffuse has no vision model for it (an "
            "SDXL refiner or a custom text encoder?). Disable FlexDiffuse for this checkpoint."
        )


def _encode_concepts(text: str) -> torch.Tensor | None:
    if not text.strip():
        return None
    cond = host.encode_prompt(text)
    tokens = cond["crossattn"] if isinstance(cond, dict) else cond
    if tokens.shape[0] > CHUNK:
        raise FlexDiffuseError(
            f"The mapping concepts prompt is {tokens.shape[0] // CHUNK} chunks long; it must fit "
            "in one (75 tokens). Name only the image concepts to map, e.g. 'dog, sunset'."
        )
    return tokens
