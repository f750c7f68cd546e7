"""Test-only ComfyUI custom node (not part of the node pack): the host kit's shallow test models.

The kit's random SDXL (``live_a1111_models.py sdxl``) has transformer depth 1 at every level
and its ViT-bigG/14 vision tower 8 of its 48 blocks: full-size ones do not fit the test
machine. ComfyUI knows models by their shapes, so it refuses both: the SDXL with "Could not
detect model type" (its SDXL class asks for depth [0, 0, 2, 2, 10, 10]), the tower with "clip
vision file is invalid" (it looks for block 47, 30 or 22). This node, loaded only by the live
tests (``--extra-model-paths-config tests/live_comfy/extra_model_paths.yaml``), makes ComfyUI
take exactly those two shapes as SDXL and ViT-bigG, built from what the file holds (depth 1,
8 blocks) and otherwise handled as the real ones; every other model is detected as before. It
is the ComfyUI twin of the kit's ``sdxl-depth-shim`` for the Forge family.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import comfy.clip_vision
import comfy.supported_models

logger = logging.getLogger(__name__)

NODE_CLASS_MAPPINGS: dict[str, Any] = {}  # no nodes: ComfyUI lists a module without it as failed

KIT_SDXL_DEPTH = [0, 0, 1, 1, 1, 1]
KIT_BIGG_BLOCKS = 8
BIGG_WIDTH = 1664
BIGG_PROJECTION = 1280
VIT_14_TOKENS = 257  # 224-pixel images in 14-pixel patches, and the class token


def _widen_sdxl(sdxl: type) -> None:
    if getattr(sdxl, "_kit_shallow_depth", False):
        return
    original = sdxl.matches.__func__

    def matches(cls, unet_config, *args, **kwargs):
        if cls is sdxl and list(unet_config.get("transformer_depth") or []) == KIT_SDXL_DEPTH:
            depth = sdxl.unet_config["transformer_depth"]  # compared as SDXL's, built as it is
            unet_config = {**unet_config, "transformer_depth": depth}
        return original(cls, unet_config, *args, **kwargs)

    sdxl.matches = classmethod(matches)
    sdxl._kit_shallow_depth = True
    logger.info("[kit_models] SDXL also matches transformer depth %s (kit's SDXL)", KIT_SDXL_DEPTH)


def _shape(sd: dict[str, Any], key: str) -> tuple[int, ...] | None:
    return tuple(sd[key].shape) if key in sd else None


def is_kit_bigg(sd: dict[str, Any]) -> bool:
    """The kit's tower in transformers' layout: ViT-bigG/14's widths, exactly 8 blocks."""
    layer = "vision_model.encoder.layers.{}.layer_norm1.weight"
    return (
        layer.format(KIT_BIGG_BLOCKS - 1) in sd
        and layer.format(KIT_BIGG_BLOCKS) not in sd
        and _shape(sd, layer.format(0)) == (BIGG_WIDTH,)
        and _shape(sd, "vision_model.embeddings.position_embedding.weight")
        == (VIT_14_TOKENS, BIGG_WIDTH)
        and _shape(sd, "visual_projection.weight") == (BIGG_PROJECTION, BIGG_WIDTH)
    )


def _teach_bigg(module: Any) -> None:
    original = module.load_clipvision_from_sd
    if getattr(original, "_kit_bigg", False):
        return
    config_g = Path(module.__file__).with_name("clip_vision_config_g.json")

    def load_clipvision_from_sd(sd, prefix="", convert_keys=False):
        if convert_keys:
            sd = module.convert_to_transformers(sd, prefix)
        if not is_kit_bigg(sd):
            return original(sd)
        config = {**json.loads(config_g.read_text()), "num_hidden_layers": KIT_BIGG_BLOCKS}
        clip = module.ClipVisionModel(config)
        missing, _ = clip.load_sd(sd)
        if missing:
            raise RuntimeError(f"[kit_models] the kit's ViT-bigG lacks {missing}")
        return clip

    load_clipvision_from_sd._kit_bigg = True
    module.load_clipvision_from_sd = load_clipvision_from_sd
    logger.info("[kit_models] CLIP vision: ViT-bigG/14 of %d blocks (kit's tower)", KIT_BIGG_BLOCKS)


_widen_sdxl(comfy.supported_models.SDXL)
_teach_bigg(comfy.clip_vision)
