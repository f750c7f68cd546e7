"""CLIP vision towers stored as one weights file, as image-prompt tools keep them.

IP-Adapter users already have the ViT-H and ViT-bigG towers as single files (ComfyUI's
``models/clip_vision``, the ControlNet extension's ``clip_vision`` folder), in one of two
layouts: transformers' (``vision_model.*`` and ``visual_projection.weight``, the full
``CLIPModel`` too) or OpenCLIP's (``visual.*``). This module reads either into a transformers
``CLIPVisionModelWithProjection`` state dict and infers the tower's configuration from the
tensor shapes. Weights come from ``.safetensors`` files. A pickle (``.pth``, ``.pt``,
``.bin``, ``.ckpt``) is read only when the user names it, with ``weights_only=True``, and only
on a torch whose ``weights_only`` loader has no published way around it
(:func:`weights_only_is_safe`); otherwise it is refused unopened, with the command that converts
it to safetensors (:func:`convert_command`).
"""

from __future__ import annotations

import math
import os
import pickle
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .known_towers import identify

VISION = "vision_model."
PROJECTION = "visual_projection.weight"
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")

WEIGHTS_ONLY_BYPASSES = {"CVE-2025-32434": (2, 6), "CVE-2026-24747": (2, 10)}
"""The published ways to run code through torch's ``weights_only`` loader, each with the first
torch release that closed it (GHSA-53q9-r3pm-6pq6: torch 2.5.1 and earlier;
GHSA-63cw-57p8-fm3p: memory corruption, torch 2.9.1 and earlier)."""
SAFE_TORCH = ".".join(map(str, max(WEIGHTS_ONLY_BYPASSES.values())))
"""The first torch release that none of :data:`WEIGHTS_ONLY_BYPASSES` affects."""

_CONVERT = (
    "import sys,torch; from safetensors.torch import save_file; "
    "s=torch.load(sys.argv[1],map_location='cpu',weights_only=True); s=s.get('state_dict',s); "
    "save_file({k:v.contiguous() for k,v in s.items() if isinstance(v,torch.Tensor)},"
    "sys.argv[2],{'format':'pt'})"
)
"""Converts a state dict pickle to safetensors (no double quotes, ``$`` or ``!``: it is shown
in double quotes, for POSIX shells and Windows alike). transformers loads a folder's
``model.safetensors`` only with the ``format`` metadata ``save_pretrained`` writes."""

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


class UnsafePickleError(CheckpointError):
    """A pickle that this torch cannot read without risk: it was not opened."""


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, or of a pickle the user named.

    Raises:
        UnsafePickleError: ``path`` is a pickle and this torch's ``weights_only`` loader has a
            published bypass; the file was not opened.
    """
    suffix = path.suffix.lower()  # Windows users meet .SAFETENSORS and .PTH too
    if suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    if suffix in PICKLE_SUFFIXES:
        if not weights_only_is_safe():
            raise UnsafePickleError(_unsafe_pickle_message(path))
        return read_torch_file(path)
    raise CheckpointError(
        f"'{path.name}' is not a weights file FlexDiffuse reads: use a .safetensors file "
        f"(or {', '.join(PICKLE_SUFFIXES)})."
    )


def weights_only_bypasses() -> list[str]:
    """The published bypasses of ``weights_only`` that the installed torch is open to.

    Decided by torch's own version: the fixes changed no API that could be probed instead.
    A pre-release of a fixing version counts as unfixed.
    """
    from torch.torch_version import TorchVersion

    installed = TorchVersion(str(torch.__version__))
    return [name for name, fixed in WEIGHTS_ONLY_BYPASSES.items() if installed < fixed]


def weights_only_is_safe() -> bool:
    """Whether the installed torch's ``weights_only`` loader has no published bypass."""
    return not weights_only_bypasses()


def convert_command(path: str | Path, target: str | Path | None = None) -> str:
    """The shell command that writes the pickle ``path`` as safetensors (default: beside it).

    It runs in this Python (which has torch and safetensors): the user runs it on a file
    they trust, since reading a pickle on an affected torch can run the file's code.
    """
    source = Path(path)
    target = Path(target) if target is not None else source.with_suffix(".safetensors")
    if os.name == "nt":
        files = subprocess.list2cmdline([sys.executable])
        paths = subprocess.list2cmdline([str(source), str(target)])
    else:
        files, paths = shlex.quote(sys.executable), shlex.join([str(source), str(target)])
    return f'{files} -c "{_CONVERT}" {paths}'


def read_torch_file(path: str | Path) -> dict[str, torch.Tensor]:
    """The tensors of the state dict in a torch file (also under a ``state_dict`` key).

    Call only for a file the user named, after :func:`weights_only_is_safe`: ``weights_only``
    refuses a pickle that names anything but tensors and containers.
    torch.serialization.load, not torch.load: A1111 swaps torch.load for a checker of its own.
    """
    name = Path(path).name
    try:
        state = torch.serialization.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message advises weights_only=False, which would run what it refused.
        refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        what = f" ({refused.group(1)})" if refused else ""
        raise CheckpointError(
            f"'{name}' holds more than tensors{what}, which torch's weights_only loader "
            "refuses: it may hide code, and FlexDiffuse does not load it."
        ) from error
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


def _unsafe_pickle_message(path: Path) -> str:
    return (
        f"'{path}' is a pickle, and reading a pickle with the torch installed here "
        f"({torch.__version__}) can run code hidden in the file even with weights_only "
        f"({', '.join(weights_only_bypasses())}; fixed in torch {SAFE_TORCH}), so FlexDiffuse "
        f"did not open it. If you trust the file, convert it to .safetensors once and use "
        f"that file instead: {convert_command(path)}"
    )


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
