"""FlexDiffuse's section of the webui's Settings page, and reading it."""

from __future__ import annotations

from collections.abc import Callable

from .families import FAMILIES, TOWERS, Tower
from .hosts import Host, SettingSpec

KEEP_LOADED = "flexdiffuse_keep_loaded"
SDXL_VIT_L_ONLY = "flexdiffuse_sdxl_vit_l_only"
DEVICE = "flexdiffuse_device"
DEVICE_SAME = "Same as Stable Diffusion"
DEVICE_CPU = "CPU"


def setting_specs(on_keep_loaded_change: Callable[[], None]) -> list[SettingSpec]:
    """Every FlexDiffuse setting, in the order the Settings page shows them."""
    towers = [
        SettingSpec(
            tower.setting,
            tower.default_model,
            f"{tower.label} vision model, for {_families_of(tower)}",
            f"Hugging Face id (downloaded once into models/FlexDiffuse, {tower.size}), a "
            "local folder saved by transformers, or a .safetensors file",
        )
        for tower in TOWERS
    ]
    return [
        *towers,
        SettingSpec(
            SDXL_VIT_L_ONLY,
            False,
            "SDXL: guide only the ViT-L part of the conditioning",
            "skips the ViT-bigG vision model, for machines short of memory",
        ),
        SettingSpec(
            KEEP_LOADED,
            True,
            "Keep CLIP vision models loaded between generations",
            "off: each model is unloaded right after encoding; encoded images are kept",
            onchange=on_keep_loaded_change,
        ),
        SettingSpec(
            DEVICE,
            DEVICE_SAME,
            "Run CLIP vision models on",
            "CPU saves GPU memory; encoding an image then takes a few seconds",
            choices=(DEVICE_SAME, DEVICE_CPU),
        ),
    ]


def tower_source(host: Host, tower: Tower) -> str:
    """The Hugging Face id, folder or file set for ``tower`` (default: its id)."""
    return str(host.option(tower.setting, "") or "").strip() or tower.default_model


def keep_loaded(host: Host) -> bool:
    """Whether vision towers stay loaded between generations."""
    return bool(host.option(KEEP_LOADED, True))


def towers_on_cpu(host: Host) -> bool:
    """Whether vision towers run on the CPU rather than the webui's device."""
    return host.option(DEVICE, DEVICE_SAME) == DEVICE_CPU


def sdxl_vit_l_only(host: Host) -> bool:
    """Whether SDXL checkpoints are guided in their ViT-L part only."""
    return bool(host.option(SDXL_VIT_L_ONLY, False))


def _families_of(tower: Tower) -> str:
    return ", ".join(f.name for f in FAMILIES if any(p.tower is tower for p in f.parts))
