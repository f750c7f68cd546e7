"""Random full-size CLIP vision towers for live tests, built from a config (no download).

    .venv/bin/python -m tests.live_comfy.random_towers DIR  # DIR/rand-clip-vit-h-14.safetensors

The live hosts ship a random ViT-L/14 (SD 1.5) and a shallow ViT-bigG/14 (SDXL); nothing
ships a ViT-H/14, the tower of SD 2.x and of IP-Adapter's SD 1.5 and "plus" models. This
builds one at its real depth and width, so a host's own loader recognises it by its shapes as
it does the released file.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

logger = logging.getLogger(__name__)

VIT_H_NAME = "rand-clip-vit-h-14.safetensors"
VIT_H_SEED = 1414


def vit_h_config():
    """OpenCLIP ViT-H/14 (laion2B) as transformers writes it: 32 layers of width 1280, 16
    heads, a 1024-wide projection, 224-pixel images in 14-pixel patches (257 tokens)."""
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=1280,
        intermediate_size=5120,
        num_attention_heads=16,
        num_hidden_layers=32,
        projection_dim=1024,
        image_size=224,
        patch_size=14,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
    )


def build_vit_h(path: Path) -> Path:
    """A random CLIP ViT-H/14 vision model with its projection, saved at ``path``; returns it.

    The keys are transformers' ``CLIPVisionModelWithProjection`` (``vision_model.*``,
    ``visual_projection.weight``), the layout of the released
    ``CLIP-ViT-H-14-laion2B-s32B-b79K`` image encoder that ComfyUI's ``CLIPVisionLoader``
    and IP-Adapter load (ComfyUI knows it by its 32 layers). The weights are random with a
    fixed seed, stored in float16 (1.2 GB; loaders cast them to their own dtype). A file
    already at ``path`` is kept (a cache): the file is written beside it and renamed, so a
    present file is always complete. Building takes about 30 s and 3 GB of memory on CPU.
    """
    path = Path(path)
    if path.is_file():
        return path
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionModelWithProjection

    start = time.monotonic()
    torch.manual_seed(VIT_H_SEED)
    model = CLIPVisionModelWithProjection(vit_h_config()).eval()
    tensors = {k: v.to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    del model
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(partial), metadata={"format": "pt", "random_seed": str(VIT_H_SEED)})
        partial.chmod(0o644)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    logger.info("built a random CLIP ViT-H/14 in %.0f s: %s", time.monotonic() - start, path)
    return path


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if len(sys.argv) != 2:
        raise SystemExit(f"usage: python -m {__spec__.name} DIR (writes {VIT_H_NAME})")
    build_vit_h(Path(sys.argv[1]) / VIT_H_NAME)
