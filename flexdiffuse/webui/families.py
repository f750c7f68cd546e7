"""The family of the webui's loaded checkpoint, in the core's table (``flexdiffuse/families.py``).

Nothing here imports the webui: the loaded model is read through the family flags the webui
sets on it (``is_sd1``, ``is_sd2``, ``is_sdxl``, ``is_sd3``).
"""

from __future__ import annotations

from typing import Any

from ..families import (
    FAMILIES,
    SD1,
    SD2,
    SDXL,
    SDXL_REFINER,
    TOWERS,
    ConditioningPart,
    Family,
)
from ..known_towers import VIT_BIGG, VIT_H, VIT_L, KnownTower
from .errors import FlexDiffuseError

__all__ = [
    "FAMILIES",
    "SD1",
    "SD2",
    "SDXL",
    "SDXL_REFINER",
    "TOWERS",
    "VIT_BIGG",
    "VIT_H",
    "VIT_L",
    "ConditioningPart",
    "Family",
    "KnownTower",
    "detect_family",
]


def detect_family(model: Any, width: int | None = None) -> Family:
    """The family of the webui's loaded ``model`` (the core's table, ``flexdiffuse/families.py``).

    ``width``, the width of its conditioning, tells the SDXL refiner (which the webui flags
    as SDXL) from SDXL.

    Raises:
        FlexDiffuseError: no model is loaded, or its family has no CLIP vision pairing.
    """
    if model is None:
        raise FlexDiffuseError("No Stable Diffusion checkpoint is loaded. Load one and retry.")
    name = MODEL_NAMES.get(type(model).__name__)
    if getattr(model, "is_sd3", False):
        raise _unsupported(name or "SD 3")
    if name is not None:  # a Forge engine of a family without a CLIP pairing
        raise _unsupported(name)
    if getattr(model, "is_sdxl", False):  # SSD-1B too: it keeps SDXL's text encoders
        return SDXL_REFINER if width == SDXL_REFINER.width else SDXL
    if getattr(model, "is_sd2", False):
        return SD2
    if getattr(model, "is_sd1", False):
        return SD1
    raise _unsupported(type(model).__name__)


MODEL_NAMES = {
    "StableDiffusion3": "SD 3.5",
    "Flux": "Flux",
    "Flux2": "Flux.2",
    "Chroma": "Chroma",
    "ZImage": "Z-Image",
    "QwenImage": "Qwen-Image",
    "QwenImage21": "Qwen-Image",
    "Lumina2": "Lumina 2",
    "WAN": "Wan",
    "Wan": "Wan",
    "Anima": "Anima",
}
"""Forge engines' class names of model families without a CLIP text encoder that a CLIP
vision tower pairs with (Forge 2, Forge Neo, ersatzForge); other names are shown as they
are."""


def _unsupported(name: str) -> FlexDiffuseError:
    supported = ", ".join(family.name for family in FAMILIES)
    return FlexDiffuseError(
        f"FlexDiffuse cannot guide {name} checkpoints: it supports {supported}. Switch to a "
        "supported checkpoint or disable FlexDiffuse for this job."
    )
