"""Random IP-Adapter files in the shapes ComfyUI_IPAdapter_plus reads, and the models beside them.

    .venv/bin/python -m tests.live_comfy.random_ipadapter DIR [--variants sd15 sd15-plus ...]
        [--vit-h] [--link COMFYUI_MODELS_DIR]

IP-Adapter ships no weights here, so its files are made from shape tables: an image projection
(a linear layer and a LayerNorm for "standard", a perceiver resampler for "plus") under
``image_proj.``, and one key and one value projection per cross-attention layer of the UNet under
``ip_adapter.`` (``1.to_k_ip.weight``, ``1.to_v_ip.weight``, ``3.…``: odd numbers in the pack's
layer order). The pack's loader builds its modules from these shapes and loads them strictly,
so a wrong shape fails at load, not silently. The tables come from the pack's documented model
layouts (IP-Adapter's published checkpoints); no code of the pack (GPL) is used.

Files are named so that the pack's unified loader finds them by its file-name patterns
(``ip-adapter_sd15``, ``ip-adapter-plus_sd15``, ``ip-adapter_sdxl_vit-h``, the ViT-H tower's
``CLIP-ViT-H-14-laion2B-s32B-b79K``), with a ``rand-`` prefix that says what they are. A file
already built with the same tables and seed is kept (its metadata says so), so a rebuild is a
stat. ``--link`` puts symbolic links into ComfyUI's ``models/ipadapter`` and
``models/clip_vision`` and never replaces a file that is not a link.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

log = logging.getLogger(__name__)

SEED = 1234
VIT_H_FILE = "rand-CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
VIT_H_WIDTHS = {"image_embeds": 1024, "hidden": 1280}
"""ViT-H/14's projected embedding (IP-Adapter "standard") and hidden width ("plus")."""

SD15_LAYERS = (320, 320, 640, 640, 1280, 1280) + (1280,) * 3 + (640,) * 3 + (320,) * 3 + (1280,)
"""SD 1.5's cross-attention widths in IP-Adapter's order: input blocks 1, 2, 4, 5, 7, 8; output
blocks 3 to 11; the middle block."""

SDXL_LAYERS = (640,) * 4 + (1280,) * 20 + (1280,) * 30 + (640,) * 6 + (1280,) * 10
"""SDXL's 70 cross-attention layers in IP-Adapter's order: input blocks 4, 5 (2 transformer
layers each), 7, 8 (10 each); output blocks 0 to 2 (10 each), 3 to 5 (2 each); the middle (10)."""


@dataclass(frozen=True)
class Variant:
    """One IP-Adapter model: its file, the UNet it patches and its image projection."""

    file: str
    layers: tuple[int, ...]
    context: int  # the UNet's cross-attention context width (the text encoder's)
    plus: bool  # a perceiver resampler over the tower's hidden states, else a linear projection
    resampler_width: int = 0
    resampler_heads: int = 0


VARIANTS = {
    "sd15": Variant("rand-ip-adapter_sd15.safetensors", SD15_LAYERS, 768, plus=False),
    "sd15-plus": Variant("rand-ip-adapter-plus_sd15.safetensors", SD15_LAYERS, 768, True, 768, 12),
    "sdxl-vit-h": Variant("rand-ip-adapter_sdxl_vit-h.safetensors", SDXL_LAYERS, 2048, plus=False),
    "sdxl-plus-vit-h": Variant(
        "rand-ip-adapter-plus_sdxl_vit-h.safetensors", SDXL_LAYERS, 2048, True, 1280, 20
    ),
}

Shapes = dict[str, tuple[int, ...]]


def attention_layer_shapes(layers: Iterable[int], context: int) -> Shapes:
    """The key and value projection of each cross-attention layer: context -> layer width."""
    shapes: Shapes = {}
    for number, width in enumerate(layers):
        for name in ("to_k_ip", "to_v_ip"):
            shapes[f"{number * 2 + 1}.{name}.weight"] = (width, context)
    return shapes


def linear_projection_shapes(context: int, embeds: int, tokens: int = 4) -> Shapes:
    """ "Standard": the pooled image embedding -> ``tokens`` context tokens, then a LayerNorm."""
    return {
        "proj.weight": (tokens * context, embeds),
        "proj.bias": (tokens * context,),
        "norm.weight": (context,),
        "norm.bias": (context,),
    }


def resampler_shapes(
    width: int, heads: int, embeds: int, output: int, queries: int = 16, depth: int = 4
) -> Shapes:
    """ "Plus": a perceiver resampler (``depth`` blocks of attention and a 4x feed-forward)."""
    inner = 64 * heads
    shapes: Shapes = {
        "latents": (1, queries, width),
        "proj_in.weight": (width, embeds),
        "proj_in.bias": (width,),
        "proj_out.weight": (output, width),
        "proj_out.bias": (output,),
        "norm_out.weight": (output,),
        "norm_out.bias": (output,),
    }
    for block in range(depth):
        attention, feed_forward = f"layers.{block}.0", f"layers.{block}.1"
        for norm in ("norm1", "norm2"):
            shapes[f"{attention}.{norm}.weight"] = (width,)
            shapes[f"{attention}.{norm}.bias"] = (width,)
        shapes[f"{attention}.to_q.weight"] = (inner, width)
        shapes[f"{attention}.to_kv.weight"] = (2 * inner, width)
        shapes[f"{attention}.to_out.weight"] = (width, inner)
        shapes[f"{feed_forward}.0.weight"] = (width,)
        shapes[f"{feed_forward}.0.bias"] = (width,)
        shapes[f"{feed_forward}.1.weight"] = (4 * width, width)
        shapes[f"{feed_forward}.3.weight"] = (width, 4 * width)
    return shapes


def variant_shapes(variant: Variant) -> Shapes:
    """Every tensor of a variant's file, by its key in the file."""
    if variant.plus:
        projection = resampler_shapes(
            variant.resampler_width,
            variant.resampler_heads,
            VIT_H_WIDTHS["hidden"],
            variant.context,
        )
    else:
        projection = linear_projection_shapes(variant.context, VIT_H_WIDTHS["image_embeds"])
    return {
        **{f"image_proj.{k}": v for k, v in projection.items()},
        **{
            f"ip_adapter.{k}": v
            for k, v in attention_layer_shapes(variant.layers, variant.context).items()
        },
    }


def random_tensors(
    shapes: Shapes, seed: int, dtype: torch.dtype = torch.float16
) -> dict[str, torch.Tensor]:
    """Seeded values as a freshly initialised model has them: LayerNorm weights 1, biases 0,
    the resampler's latent queries N(0, 1/width), every matrix N(0, 0.02)."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        if key.endswith(".bias"):
            value = torch.zeros(shape)
        elif key.endswith(".weight") and len(shape) == 1:
            value = torch.ones(shape)
        elif key.endswith("latents"):
            value = torch.randn(shape, generator=generator) / shape[-1] ** 0.5
        else:
            value = torch.randn(shape, generator=generator) * 0.02
        out[key] = value.to(dtype).contiguous()
    return out


def fingerprint(shapes: Shapes, seed: int) -> str:
    """What a built file was made from; a file with another fingerprint is rebuilt."""
    text = json.dumps({"seed": seed, "shapes": sorted(shapes.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def is_built(path: Path, stamp: str) -> bool:
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            return (f.metadata() or {}).get("random_model") == stamp
    except Exception:  # a truncated or foreign file: build it again
        return False


def build_ipadapter(path: Path, variant: Variant, seed: int = SEED) -> Path:
    """Write ``variant``'s random IP-Adapter file (float16 safetensors) unless already built."""
    shapes = variant_shapes(variant)
    stamp = fingerprint(shapes, seed)
    if is_built(path, stamp):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    save_file(random_tensors(shapes, seed), str(partial), metadata={"random_model": stamp})
    partial.chmod(0o644)
    partial.replace(path)
    log.info("wrote %s (%d tensors)", path, len(shapes))
    return path


def link_model(target: Path, models_dir: Path, kind: str) -> Path:
    """Link ``target`` into ComfyUI's ``models/<kind>/``; a file that is not a link stays."""
    folder = models_dir / kind
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / target.name
    if link.exists() and not link.is_symlink():
        if link.resolve() != target.resolve():
            raise FileExistsError(f"{link} exists and is not a link: not replacing it")
        return link
    if link.is_symlink():
        link.unlink()
    link.symlink_to(target.resolve())
    return link


def build_all(folder: Path, variants: Iterable[str], vit_h: bool) -> dict[str, list[Path]]:
    """The variants under ``folder/ipadapter``, the ViT-H tower under ``folder/clip_vision``."""
    built: dict[str, list[Path]] = {"ipadapter": [], "clip_vision": []}
    for name in variants:
        variant = VARIANTS[name]
        built["ipadapter"].append(build_ipadapter(folder / "ipadapter" / variant.file, variant))
    if vit_h:
        from tests.live_comfy.random_towers import build_vit_h

        path = folder / "clip_vision" / VIT_H_FILE
        build_vit_h(path)
        built["clip_vision"].append(path)
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the files go (ipadapter/, clip_vision/)")
    parser.add_argument("--variants", nargs="*", default=["sd15"], choices=sorted(VARIANTS))
    parser.add_argument("--vit-h", action="store_true", help="the random ViT-H/14 tower too")
    parser.add_argument("--link", type=Path, help="a ComfyUI models/ folder to link them into")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[random_ipadapter] %(message)s")
    built = build_all(args.folder, args.variants, args.vit_h)
    for kind, paths in built.items():
        for path in paths:
            shown = link_model(path, args.link, kind) if args.link else path
            log.info("%s: %s", kind, shown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
