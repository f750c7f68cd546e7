"""The one table of the CLIP vision towers FlexDiffuse knows: what each is, where it comes from.

Words used across the package:

- **tower**: a CLIP vision tower, the vision transformer and its visual projection.
- **known tower**: an entry of :data:`KNOWN_TOWERS`, a released tower named by what it is (its
  architecture and where it comes from), never by one of its sizes: two towers of one width
  are two entries.
- **source**: where a tower's weights are: a Hugging Face id (``owner/repo``, or a folder of
  a repo, ``owner/repo/sub/folder``), a local folder saved by transformers, or one weights file.
- **source key**: one spelling of a source (:func:`flexdiffuse.towers.source_key`).
- **token width**: the width of a tower's image tokens (its projection), which must match the
  text space of the conditioning it guides; **hidden width**: its transformer's width.

Adding a tower to guide another text encoder is one entry here and one
:class:`~flexdiffuse.families.ConditioningPart` that pairs it (docs/development.md, "Adding a
tower"). Sources and sizes:
docs/tower-sources.md. Nothing here imports the webui.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KnownTower:
    """A released CLIP vision tower.

    The attention heads and the activation cannot be read off the weights (heads share one
    matrix), so loading a weights file without a config takes them from here.
    """

    name: str
    """Its stable id (``vit_l``): names its setting, never shown."""
    label: str
    """Its name in messages and the Settings page."""
    hidden_width: int
    token_width: int
    layers: int
    heads: int
    activation: str
    default_source: str | None = None
    """What a first job downloads for it (None: FlexDiffuse pairs it with no checkpoint)."""
    download_gb: float | None = None
    """Bytes the first job downloads, in GB (10^9): the weights file, plus a config of ~2 kB."""
    earlier_sources: tuple[str, ...] = ()
    """Earlier defaults (whole CLIP models, text tower included): still load, download more."""

    @property
    def size(self) -> str:
        """What downloading :attr:`default_source` costs, e.g. ``"3.69 GB"``."""
        return f"{self.download_gb:.2f} GB" if self.download_gb is not None else "unknown"

    @property
    def setting(self) -> str:
        """The webui setting holding the Hugging Face id, folder or file of this tower."""
        return f"flexdiffuse_model_{self.name}"


# The h94/IP-Adapter folders hold a vision tower with its projection as safetensors and no
# preprocessor_config.json: the encoder uses CLIP's standard preprocessing (the same mean, std
# and 224 px for all three paired towers).
VIT_B = KnownTower("vit_b", "CLIP ViT-B", 768, 512, 12, 12, "quick_gelu")
VIT_L = KnownTower(
    "vit_l", "CLIP ViT-L/14", 1024, 768, 24, 16, "quick_gelu", "openai/clip-vit-large-patch14", 1.71
)
VIT_H = KnownTower(
    "vit_h",
    "OpenCLIP ViT-H/14",
    1280,
    1024,
    32,
    16,
    "gelu",
    "h94/IP-Adapter/models/image_encoder",
    2.53,
    ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K",),
)
VIT_BIGG = KnownTower(
    "vit_bigg",
    "OpenCLIP ViT-bigG/14",
    1664,
    1280,
    48,
    16,
    "gelu",
    "h94/IP-Adapter/sdxl_models/image_encoder",
    3.69,
    ("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k",),
)
KNOWN_TOWERS: tuple[KnownTower, ...] = (VIT_B, VIT_L, VIT_H, VIT_BIGG)


def identify(hidden_width: int, layers: int) -> KnownTower | None:
    """The known tower of this architecture, or None for one FlexDiffuse does not know.

    Its depth decides between towers of one hidden width; a tower of a known width and another
    depth (a pruned or distilled one) is taken to share that tower's heads and activation.
    """
    same_width = [tower for tower in KNOWN_TOWERS if tower.hidden_width == hidden_width]
    exact = [tower for tower in same_width if tower.layers == layers]
    return (exact or same_width or [None])[0]


def paired_tower(token_width: int) -> KnownTower | None:
    """The tower FlexDiffuse pairs with a text space ``token_width`` wide (one per width: the
    towers with a default source), or None when it pairs none."""
    return next(
        (t for t in KNOWN_TOWERS if t.default_source and t.token_width == token_width), None
    )
