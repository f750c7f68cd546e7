"""Model families: which CLIP vision tower guides which slice of a checkpoint's conditioning.

Each text encoder pairs with the vision tower trained with it, whose projected image tokens
share its space (docs/algorithm.md, "Image tokens"). Both hosts read this one table: the webui
through the family flags of its loaded model, ComfyUI through a conditioning's width.

The SDXL refiner conditions on OpenCLIP ViT-bigG/14 states alone (width 1280): it is guided
by the ViT-bigG tower, on both hosts, and its pooled vector like SDXL's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .known_towers import VIT_BIGG, VIT_H, VIT_L, KnownTower


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
    """A checkpoint family: its conditioning width and the parts its text encoders fill.

    ``pooled`` says whether it also conditions on a pooled ViT-bigG vector (the one pooled
    image guidance moves).
    """

    name: str
    width: int
    parts: tuple[ConditioningPart, ...]
    pooled: bool = False

    def part_of(self, tower: KnownTower) -> ConditioningPart | None:
        """The part ``tower`` guides, or None when it pairs with none of this family's."""
        return next((part for part in self.parts if part.tower == tower), None)

    @property
    def towers(self) -> str:
        """Its towers as messages name them: "CLIP ViT-L/14 and OpenCLIP ViT-bigG/14"."""
        return " and ".join(part.tower.label for part in self.parts)


SD1 = Family("SD 1.x", 768, (ConditioningPart(0, VIT_L),))
SD2 = Family("SD 2.x", 1024, (ConditioningPart(0, VIT_H),))
SDXL = Family(
    "SDXL", 2048, (ConditioningPart(0, VIT_L), ConditioningPart(768, VIT_BIGG)), pooled=True
)
SDXL_REFINER = Family("SDXL refiner", 1280, (ConditioningPart(0, VIT_BIGG),), pooled=True)
FAMILIES: tuple[Family, ...] = (SD1, SD2, SDXL, SDXL_REFINER)

TOWERS: tuple[KnownTower, ...] = tuple(
    dict.fromkeys(part.tower for family in FAMILIES for part in family.parts)
)
"""The towers the families pair with, in the order the Settings page shows their settings."""


def family_of_width(width: int) -> Family | None:
    """The family whose conditioning is ``width`` wide (None: none FlexDiffuse guides)."""
    return next((family for family in FAMILIES if family.width == width), None)


def supported_families() -> str:
    """The families as messages list them: "SD 1.x (768), SD 2.x (1024), ..."."""
    return ", ".join(f"{family.name} ({family.width})" for family in FAMILIES)
