"""CLIP vision towers stored as one weights file, as image-prompt tools keep them.

IP-Adapter users already have the ViT-H and ViT-bigG towers as single files (ComfyUI's
``models/clip_vision``, the ControlNet extension's ``clip_vision`` folder), in one of two
layouts: transformers' (``vision_model.*`` and ``visual_projection.weight``, the full
``CLIPModel`` too) or OpenCLIP's (``visual.*``). This module reads either into a transformers
``CLIPVisionModelWithProjection`` state dict and infers the tower's configuration from the
tensor shapes. Weights come from ``.safetensors`` files, or from pickles read with
``weights_only=True``, which cannot run code.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .known_towers import identify

VISION = "vision_model."
PROJECTION = "visual_projection.weight"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")

_OPEN_CLIP_BLOCK = {
    "ln_1": "layer_norm1",
    "ln_2": "layer_norm2",
    "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1",
    "mlp.c_proj": "mlp.fc2",
}
_OPEN_CLIP_TOP = {
    "visual.class_embedding": "vision_model.embeddings.class_embedding",
    "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
    "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
    "visual.ln_pre.weight": "vision_model.pre_layrnorm.weight",
    "visual.ln_pre.bias": "vision_model.pre_layrnorm.bias",
    "visual.ln_post.weight": "vision_model.post_layernorm.weight",
    "visual.ln_post.bias": "vision_model.post_layernorm.bias",
}
_BLOCK_KEY = re.compile(r"visual\.transformer\.resblocks\.(\d+)\.(.+)")
_LAYER_KEY = re.compile(r"vision_model\.encoder\.layers\.(\d+)\.")


class CheckpointError(ValueError):
    """A weights file that is not a CLIP vision tower FlexDiffuse can use."""


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, or of a pickle read with ``weights_only``."""
    suffix = path.suffix.lower()  # Windows users meet .SAFETENSORS and .PTH too
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix in PICKLE_SUFFIXES:
        return read_torch_file(path)
    raise CheckpointError(
        f"'{path.name}' is not a weights file FlexDiffuse reads: use a .safetensors file "
        f"(or {', '.join(PICKLE_SUFFIXES)})."
    )


def read_torch_file(path: str | Path, *, mmap: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of the state dict in a torch file (also under a ``state_dict`` key).

    ``weights_only`` refuses a pickle that names anything but tensors and containers, so no
    code runs while reading; with ``mmap`` the storages are mapped, not read (the file must be
    zip-format, as ``torch.save`` writes it), so the tensors' shapes cost no weights.
    torch.serialization.load, not torch.load: A1111 swaps torch.load for a checker of its own.
    """
    name = Path(path).name
    state = torch.serialization.load(str(path), map_location="cpu", weights_only=True, mmap=mmap)
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise CheckpointError(f"'{name}' holds a {type(state).__name__}, not weights.")
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def vision_state_dict(weights: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The tower's tensors under transformers' ``CLIPVisionModelWithProjection`` names.

    Text-tower tensors of a whole CLIP model are dropped; a prefix before ``vision_model.``
    or ``visual.`` (``clip.``, ``model.``) is ignored.
    """
    if any(_strip(key, VISION) for key in weights):
        return {
            name: tensor
            for key, tensor in weights.items()
            if (name := _strip(key, VISION) or _strip(key, PROJECTION)) is not None
        }
    visual = {name: t for key, t in weights.items() if (name := _strip(key, "visual.")) is not None}
    if visual:
        return _from_open_clip(visual)
    raise CheckpointError(
        "no CLIP vision tower in this file: expected transformers' 'vision_model.*' or "
        "OpenCLIP's 'visual.*' tensors."
    )


def vision_config(state: Mapping[str, torch.Tensor], given: Any = None) -> Any:
    """A ``CLIPVisionConfig`` that fits the tensors of :func:`vision_state_dict`.

    ``given`` (a config found beside the weights) supplies what shapes cannot tell, the
    attention heads and the activation, when its sizes agree with the tensors; otherwise they
    come from the known tower of this architecture (:func:`~.known_towers.identify`).
    """
    from transformers import CLIPVisionConfig

    try:
        width = state["vision_model.embeddings.class_embedding"].shape[0]
        patch = state["vision_model.embeddings.patch_embedding.weight"].shape[-1]
        positions = state["vision_model.embeddings.position_embedding.weight"].shape[0]
        intermediate = state["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]
    except KeyError as missing:
        raise CheckpointError(f"the tower lacks {missing}.") from None
    if PROJECTION not in state:
        raise CheckpointError(
            "the tower has no visual projection: FlexDiffuse needs the projected image "
            "tokens (CLIPVisionModelWithProjection, or OpenCLIP's 'visual.proj')."
        )
    grid = math.isqrt(positions - 1)
    if grid * grid != positions - 1:
        raise CheckpointError(f"{positions} position embeddings are not a square grid + 1.")
    layers = 1 + max(int(m.group(1)) for key in state if (m := _LAYER_KEY.match(key)))
    known = identify(width, layers)
    # Another tower takes 64-wide heads and GELU.
    heads, act = (known.heads, known.activation) if known else (max(1, width // 64), "gelu")
    if given is not None and getattr(given, "hidden_size", None) == width:
        heads, act = given.num_attention_heads, given.hidden_act
    return CLIPVisionConfig(
        hidden_size=width,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        hidden_act=act,
        image_size=grid * patch,
        patch_size=patch,
        projection_dim=state[PROJECTION].shape[0],
    )


def expected_shapes(config: Any) -> dict[str, tuple[int, ...]]:
    """The tensor shapes of a ``CLIPVisionModelWithProjection`` built from ``config``.

    Lets a file be checked against the tower it claims to be from its header alone, without
    building the model (which takes seconds for ViT-bigG even on the meta device).
    """
    width, inner = config.hidden_size, config.intermediate_size
    patch, positions = config.patch_size, (config.image_size // config.patch_size) ** 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        f"{VISION}embeddings.class_embedding": (width,),
        f"{VISION}embeddings.patch_embedding.weight": (width, config.num_channels, patch, patch),
        f"{VISION}embeddings.position_embedding.weight": (positions, width),
        PROJECTION: (config.projection_dim, width),
    }
    for norm in ("pre_layrnorm", "post_layernorm"):
        shapes.update({f"{VISION}{norm}.{kind}": (width,) for kind in ("weight", "bias")})
    for index in range(config.num_hidden_layers):
        layer = f"{VISION}encoder.layers.{index}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{layer}self_attn.{proj}.weight"] = (width, width)
            shapes[f"{layer}self_attn.{proj}.bias"] = (width,)
        for norm in ("layer_norm1", "layer_norm2"):
            shapes.update({f"{layer}{norm}.{kind}": (width,) for kind in ("weight", "bias")})
        shapes.update({f"{layer}mlp.fc1.weight": (inner, width), f"{layer}mlp.fc1.bias": (inner,)})
        shapes.update({f"{layer}mlp.fc2.weight": (width, inner), f"{layer}mlp.fc2.bias": (width,)})
    return shapes


def _strip(key: str, marker: str) -> str | None:
    """``key`` from ``marker`` on (its prefix dropped), or None if it lacks the marker."""
    index = key.find(marker)
    if index < 0 or (index > 0 and key[index - 1] != "."):
        return None
    return key[index:]


def _from_open_clip(visual: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for key, tensor in visual.items():
        if key in _OPEN_CLIP_TOP:
            state[_OPEN_CLIP_TOP[key]] = tensor
        elif key == "visual.proj":
            state[PROJECTION] = tensor.t().contiguous()
        elif match := _BLOCK_KEY.fullmatch(key):
            state.update(_open_clip_block(int(match.group(1)), match.group(2), tensor))
    return state


def _open_clip_block(index: int, name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    prefix = f"vision_model.encoder.layers.{index}."
    if name.startswith("attn.in_proj_"):  # q, k and v stacked in one matrix
        kind = name.rsplit("_", 1)[1]
        parts = zip("qkv", tensor.chunk(3, dim=0), strict=True)
        return {f"{prefix}self_attn.{p}_proj.{kind}": t for p, t in parts}
    module, _, kind = name.rpartition(".")
    return {f"{prefix}{_OPEN_CLIP_BLOCK.get(module, module)}.{kind}": tensor}
