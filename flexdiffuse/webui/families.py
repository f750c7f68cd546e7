"""Model families: which CLIP vision tower guides which slice of a checkpoint's conditioning.

Each text encoder pairs with the vision tower trained with it, whose projected image tokens
share its space (docs/algorithm.md, "Image tokens"). Nothing here imports the webui: the
loaded model is read through the family flags the webui sets on it (``is_sd1``, ``is_sd2``,
``is_sdxl``, ``is_sd3``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..known_towers import VIT_BIGG, VIT_H, VIT_L, KnownTower
from .errors import FlexDiffuseError


@dataclass(frozen=True)
class ConditioningPart:
    """The channels of the conditioning one text encoder fills, and the tower paired with it."""

    channel_start: int
    tower: KnownTower

    @property
    def channel_stop(self) -> int:
        """One past the last channel of the part."""
        return self.channel_start + self.tower.token_width


@dataclass(frozen=True)
class Family:
    """A checkpoint family: its conditioning width and the parts its text encoders fill."""

    name: str
    width: int
    parts: tuple[ConditioningPart, ...]


SD1 = Family("SD 1.x", 768, (ConditioningPart(0, VIT_L),))
SD2 = Family("SD 2.x", 1024, (ConditioningPart(0, VIT_H),))
SDXL = Family("SDXL", 2048, (ConditioningPart(0, VIT_L), ConditioningPart(768, VIT_BIGG)))
FAMILIES: tuple[Family, ...] = (SD1, SD2, SDXL)

TOWERS: tuple[KnownTower, ...] = tuple(
    dict.fromkeys(part.tower for family in FAMILIES for part in family.parts)
)
"""The towers the families pair with, in the order the Settings page shows their settings."""


def detect_family(model: Any) -> Family:
    """The family of the webui's loaded ``model``.

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
        return SDXL
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
