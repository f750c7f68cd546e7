"""Everything FlexDiffuse reads from or asks of A1111 at generation time, in one place.

This is the only module of the job path that imports A1111's ``modules``; the rest of the
glue is plain Python that tests run against it with a fake host.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
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


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Hold the webui's job queue: no generation runs while the model is used here."""
    from modules.call_queue import queue_lock

    with queue_lock:
        yield


def first_scheduled_text(prompt: str) -> str:
    """The text the checkpoint encodes first for ``prompt``, as A1111 reads prompts.

    Extra networks (``<lora:...>``) removed, the first ``AND`` sub-prompt, at the first step
    of prompt editing and alternation.
    """
    from modules import extra_networks, prompt_parser

    text, _ = extra_networks.parse_prompt(prompt)
    _, sub_prompts, _ = prompt_parser.get_multicond_prompt_list([text])
    schedule = prompt_parser.get_learned_conditioning_prompt_schedules([sub_prompts[0]], 100)
    return schedule[0][0][1]


START, END, PAD = "<start>", "<end>", ""


def prompt_token_labels(prompt: str) -> list[list[str]] | None:
    """The token at each position of each 77-token chunk of ``prompt``, as text.

    Split the way the checkpoint's text encoder splits prompts (emphasis, ``BREAK``,
    textual-inversion embeddings by name); None when the encoder offers no tokenizer.
    """
    wrapper = _text_wrapper()
    decode = _token_decoder(wrapper) if wrapper is not None else None
    if decode is None:
        return None
    chunks, _ = wrapper.tokenize_line(prompt)
    labels = []
    for chunk in chunks:
        row = [START] + [decode(token) for token in chunk.tokens[1:]]
        if wrapper.id_end in chunk.tokens[1:]:
            end = chunk.tokens.index(wrapper.id_end, 1)
            row[end:] = [END] + [PAD] * (len(row) - end - 1)
        for fix in chunk.fixes:  # an embedding fills the positions after its offset (+1: BOS)
            width = int(getattr(fix.embedding, "vectors", 1))
            names = [fix.embedding.name] + ["\u2026"] * (width - 1)
            row[fix.offset + 1 : fix.offset + 1 + width] = names
        labels.append(row)
    return labels


def _text_wrapper() -> Any:
    """A1111's prompt tokenizer wrapper of the loaded model (SDXL: its CLIP-L embedder)."""
    from modules import sd_hijack

    clip = sd_hijack.model_hijack.clip
    for candidate in [clip, *getattr(clip, "embedders", [])]:
        if hasattr(candidate, "tokenize_line"):
            return candidate
    return None


def _token_decoder(wrapper: Any) -> Callable[[int], str] | None:
    tokenizer = getattr(wrapper, "tokenizer", None)
    if hasattr(tokenizer, "convert_ids_to_tokens"):  # transformers' CLIPTokenizer (CLIP-L)
        return lambda token: tokenizer.convert_ids_to_tokens(token).replace("</w>", "")
    open_clip = getattr(sys.modules.get("modules.sd_hijack_open_clip"), "tokenizer", None)
    if hasattr(open_clip, "decoder"):  # OpenCLIP's tokenizer (SD 2.x)
        return lambda token: open_clip.decoder.get(token, "?").replace("</w>", "")
    return None
