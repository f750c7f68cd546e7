"""Everything FlexDiffuse reads from or asks of A1111 at generation time, in one place.

This is the only module of the job path that imports A1111's ``modules``; the rest of the
glue is plain Python that tests run against it with a fake host.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from modules import devices, paths, shared

from .conds import Cond
from .errors import FlexDiffuseError

SETTINGS_SECTION = ("flexdiffuse", "FlexDiffuse")
KEEP_LOADED = "flexdiffuse_keep_loaded"
SDXL_VIT_L_ONLY = "flexdiffuse_sdxl_vit_l_only"
DEVICE = "flexdiffuse_device"
DEVICE_SAME = "Same as Stable Diffusion"
DEVICE_CPU = "CPU"


def option(key: str, default: Any) -> Any:
    """A setting's value, or ``default`` before the settings page registered it."""
    return shared.opts.data.get(key, default)


def is_forge() -> bool:
    """Whether this webui is Forge, whose sampling path FlexDiffuse does not hook yet."""
    return importlib.util.find_spec("modules_forge") is not None


def check_host() -> None:
    """Stop a guided job on hosts whose conditioning path differs from A1111's."""
    if is_forge():
        raise FlexDiffuseError(
            "FlexDiffuse does not support Stable Diffusion WebUI Forge yet: Forge replaces the "
            "sampling code FlexDiffuse hooks, so guidance would silently do nothing. Use "
            "AUTOMATIC1111 WebUI 1.7 to 1.10, or disable FlexDiffuse."
        )


def sd_model() -> Any:
    """The loaded Stable Diffusion model."""
    return shared.sd_model


def encode_prompt(text: str) -> Cond:
    """``text`` through the checkpoint's own text encoder, exactly as A1111 encodes prompts
    (CLIP skip, emphasis, embeddings, chunking): ``[77*k, d]`` or SDXL's dict of those."""
    with torch.no_grad(), devices.autocast():
        cond = shared.sd_model.get_learned_conditioning([text])
    if isinstance(cond, dict):
        return {key: value[0] for key, value in cond.items()}
    return cond[0]


def tower_device_and_dtype() -> tuple[torch.device, torch.dtype]:
    """Where the vision towers run, per the compute-device setting."""
    if option(DEVICE, DEVICE_SAME) == DEVICE_CPU:
        return devices.cpu, torch.float32
    return devices.device, devices.dtype


def download_dir() -> Path:
    """Where vision towers are downloaded: ``models/FlexDiffuse`` of the webui."""
    return Path(paths.models_path) / "FlexDiffuse"


def free_memory() -> None:
    """Return freed GPU memory to the driver after unloading a tower."""
    devices.torch_gc()


def interrupt() -> None:
    """Stop the current sampling loop at its next step."""
    shared.state.interrupt()
