"""FlexDiffuse's section of A1111's Settings page."""

from __future__ import annotations

import gradio as gr
from modules import shared

from . import host, prepare
from .families import FAMILIES, TOWERS


def register_settings() -> None:
    """Add the settings (an ``on_ui_settings`` callback)."""
    section = host.SETTINGS_SECTION
    for tower in TOWERS:
        families = ", ".join(f.name for f in FAMILIES if any(s.tower is tower for s in f.slots))
        shared.opts.add_option(
            tower.setting,
            shared.OptionInfo(
                tower.default_model, f"{tower.label} vision model, for {families}", section=section
            ).info(
                f"Hugging Face id (downloaded once into models/FlexDiffuse, {tower.size}), a "
                "local folder saved by transformers, or a .safetensors file"
            ),
        )
    shared.opts.add_option(
        host.SDXL_VIT_L_ONLY,
        shared.OptionInfo(
            False, "SDXL: guide only the ViT-L part of the conditioning", section=section
        ).info("skips the ViT-bigG vision model, for machines short of memory"),
    )
    shared.opts.add_option(
        host.KEEP_LOADED,
        shared.OptionInfo(
            True,
            "Keep CLIP vision models loaded between generations",
            onchange=_unload_if_not_kept,
            section=section,
        ).info("off: each model is unloaded right after encoding; encoded images are kept"),
    )
    shared.opts.add_option(
        host.DEVICE,
        shared.OptionInfo(
            host.DEVICE_SAME,
            "Run CLIP vision models on",
            gr.Radio,
            {"choices": [host.DEVICE_SAME, host.DEVICE_CPU]},
            section=section,
        ).info("CPU saves GPU memory; encoding an image then takes a few seconds"),
    )


def _unload_if_not_kept() -> None:
    if not host.option(host.KEEP_LOADED, True):
        prepare.VISION_TOWERS.unload()
        host.free_memory()
