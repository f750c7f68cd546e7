"""What every Forge shares beyond A1111: a memory manager that owns the GPU, the built-in
ControlNet's Revision, the UI's main thread. Both Forge backends build on this.

Forge 2 (``backend/``) and old Forge (``ldm_patched``) keep A1111's ``modules`` API for
everything FlexDiffuse reads at a sampling step (the ``on_cfg_denoiser`` callback, the
prompt schedules in ``sampler_extra_args``, the denoiser's step counter), so the
:class:`~.a1111.A1111Host` methods hold there; what differs is overridden here and in
:mod:`.forge2` / :mod:`.oldforge`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import is_job_error
from .a1111 import A1111Host, pass_cfg_scale

REVISION = (
    "ControlNet's Revision preprocessor replaces the pooled conditioning after FlexDiffuse "
    "guided it, so FlexDiffuse's pooled image guidance has no effect in this job (its token "
    "guidance does)."
)
REVISION_IGNORE_PROMPT = (
    "ControlNet's Revision (ignore prompt) preprocessor zeroes the prompt's conditioning after "
    "FlexDiffuse guided it, so FlexDiffuse has no effect in this job: turn one of them off."
)


class ForgeHost(A1111Host):
    """A Forge: A1111's ``modules`` API over a backend whose memory manager owns the GPU."""

    default_name = "WebUI Forge"

    memory_manager = ""
    """The module of the backend's memory manager (``free_memory``, ``soft_empty_cache``,
    ``minimum_inference_memory``)."""

    def _memory(self) -> Any:
        return importlib.import_module(self.memory_manager)

    def make_room(self, size: int, device: torch.device) -> None:
        device = torch.device(device)
        if device.type == "cpu":
            return
        memory = self._memory()
        # The manager unloads its own models (the UNet, text encoders, VAE) until this fits.
        memory.free_memory(size + memory.minimum_inference_memory(), device)

    def tower_park(self, device: torch.device) -> torch.device | None:
        # Forge counts what it did not load as free: a tower left on the GPU makes its next
        # model load run out of memory. Towers wait on the CPU and come back to encode.
        return None if torch.device(device).type == "cpu" else torch.device("cpu")

    def _negative_ignored(self, params: Any) -> bool:
        # Both backends' sampling_function drop the negative side at a CFG scale of 1 (after
        # the step callbacks on old Forge; Forge 2 has no negative prompt there at all),
        # unless a patch of the UNet turned that shortcut off.
        if not math.isclose(pass_cfg_scale(params), 1.0):
            return False
        model = getattr(params.denoiser.p, "sd_model", None)
        unet = getattr(getattr(model, "forge_objects", None), "unet", None)
        options = getattr(unet, "model_options", None)
        return not (isinstance(options, dict) and options.get("disable_cfg1_optimization"))

    def conditioning_override(self) -> str | None:
        unet = getattr(getattr(self.sd_model(), "forge_objects", None), "unet", None)
        revisions = (getattr(unet, "model_options", None) or {}).get("revision_conditions")
        if not revisions:
            return None
        if any(revision.get("ignore_prompt") for revision in revisions):
            return REVISION_IGNORE_PROMPT
        return REVISION

    def on_load(self) -> None:
        try:
            main_thread = importlib.import_module("modules_forge.main_thread")
        except ImportError:  # a Forge without Forge's main thread: the UI calls jobs directly
            return
        surface_job_errors(main_thread)


def surface_job_errors(main_thread: Any) -> None:
    """Let a guided job's error reach the UI through Forge's main thread.

    The UI runs txt2img and img2img on Forge's main thread (``main_thread.
    run_and_wait_result``). Forge 2 keeps the task's exception (``last_exception``) and the
    UI shows it; old Forge's ``loop`` prints it and returns None, and the UI then shows only
    "TypeError: 'NoneType' object is not iterable". Where the host keeps no exception, this
    wraps ``run_and_wait_result`` so that FlexDiffuse's own errors (and only those) are
    raised again in the caller's thread, where the UI's error handler shows them as A1111
    does. Every other outcome is the host's. Idempotent.
    """
    run = getattr(main_thread, "run_and_wait_result", None)
    if run is None or hasattr(main_thread, "last_exception"):
        return  # no main thread to adapt, or one that keeps the exception for the UI
    if getattr(run, "flexdiffuse_raises", False):
        return  # adapted already (the webui reloaded its scripts)

    def run_and_wait_result(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        failures: list[BaseException] = []

        def task(*task_args: Any, **task_kwargs: Any) -> Any:
            try:
                return func(*task_args, **task_kwargs)
            except Exception as error:
                if not is_job_error(error):
                    raise
                failures.append(error)
                return None

        result = run(task, *args, **kwargs)
        if failures:
            raise failures[0]
        return result

    run_and_wait_result.flexdiffuse_raises = True  # type: ignore[attr-defined]
    run_and_wait_result.__wrapped__ = run  # type: ignore[attr-defined]
    main_thread.run_and_wait_result = run_and_wait_result
