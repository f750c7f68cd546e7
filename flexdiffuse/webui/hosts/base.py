"""What FlexDiffuse needs from a webui, as one interface with one implementation per backend.

The job code (arguments, guidance, sampling hooks, preview, panel, settings) talks to the webui
only through a :class:`Host` object it is given, never by importing the webui's ``modules``:
ruff's banned-import rule (TID251, see pyproject.toml) enforces that outside this package and
``script.py``. A new backend means one new :class:`Host` implementation in this package.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..conds import Cond

START, END, PAD = "<start>", "<end>", ""
"""Token labels (:meth:`Host.prompt_token_labels`) of a chunk's header, its end token and
the padding after it."""


@dataclass(frozen=True)
class StepConds:
    """What one sampling step of a pass conditions on, as the host's denoiser holds it.

    ``cond`` is the pass's prompt schedules (a ``MulticondLearnedConditioning``), ``uncond``
    its negative prompt schedules (None when the host skips them, e.g. at CFG scale 1);
    ``step`` is the index of this step in the pass, ``total`` the pass's expected steps
    (0 when unknown).
    """

    cond: Any
    uncond: Any
    step: int
    total: int


@dataclass(frozen=True)
class SettingSpec:
    """One FlexDiffuse setting for the host's Settings page.

    ``choices`` makes it a radio button; ``suggestions`` a dropdown of the values it returns
    for the host (asked again each time the page is built and by a refresh button beside it)
    that also takes any text; ``onchange`` runs when the user changes it. ``infotext`` is
    its infotext key, for a setting that changes the image: the webui then sets it from a
    pasted infotext (as an override setting).
    """

    key: str
    default: Any
    label: str
    info: str
    choices: Sequence[str] | None = None
    onchange: Callable[[], None] | None = None
    suggestions: Callable[[Host], Sequence[str]] | None = None
    infotext: str | None = None


class Host(Protocol):
    """Everything FlexDiffuse reads from or asks of the webui it runs in."""

    name: str
    """The webui, as messages name it."""

    unsupported: str | None
    """Why guided jobs cannot run on this host (shown in the panel and raised), or None."""

    def option(self, key: str, default: Any) -> Any:
        """A setting's value, or ``default`` before the settings page registered it."""

    def add_settings(self, settings: Sequence[SettingSpec]) -> None:
        """Add FlexDiffuse's section to the Settings page (an ``on_ui_settings`` callback)."""

    def sd_model(self) -> Any:
        """The loaded Stable Diffusion model (None when none is loaded)."""

    def load_model(self) -> Any:
        """The model for work outside a job (the preview), loading the selected checkpoint
        first on hosts that load it only at the first generation; None when none loads."""

    def encode_prompt(self, text: str) -> Cond:
        """``text`` through the checkpoint's own text encoder, as the host encodes prompts."""

    def step_conds(self, params: Any) -> StepConds:
        """The conditioning schedules and step counters of a denoiser callback's step."""

    def tower_device_and_dtype(self, on_cpu: bool) -> tuple[torch.device, torch.dtype]:
        """Where vision towers run: the webui's device and dtype, or the CPU in float32."""

    def models_dir(self) -> Path:
        """The webui's models folder (FlexDiffuse downloads into its ``FlexDiffuse`` folder)."""

    def tower_folders(self) -> list[Path]:
        """Folders where the webui and its popular extensions keep CLIP vision files.

        Folders that do not exist may be listed; FlexDiffuse skips them.
        """

    def set_progress_text(self, text: str | None) -> None:
        """Show ``text`` as the running job's progress text in the web page (None: clear it)."""

    def stop_requested(self) -> bool:
        """Whether the user asked the running job to stop (Interrupt) or skip this image."""

    def free_memory(self) -> None:
        """Return freed accelerator memory after a vision tower was unloaded."""

    def make_room(self, size: int, device: torch.device) -> None:
        """Ask the host's memory manager for ``size`` bytes on ``device`` before a vision
        tower moves there (it unloads its own models as needed)."""

    def tower_park(self, device: torch.device) -> torch.device | None:
        """Where vision towers wait between encodings, or None: they stay on ``device``.

        Hosts whose memory manager owns ``device`` count a tower left there as free memory
        and run out of it, so towers wait on the CPU there.
        """

    def conditioning_override(self) -> str | None:
        """Why something the host runs after the step callbacks replaces the guided
        conditioning of the current job (a note for the user), or None."""

    def on_load(self) -> None:
        """Adapt the host once FlexDiffuse is loaded (e.g. so that a job's error reaches
        the UI); safe to call again when the webui reloads its scripts."""

    def interrupt(self) -> None:
        """Stop the current sampling loop at its next step."""

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold the webui's job queue while the loaded checkpoint is used outside a job."""

    def first_scheduled_text(self, prompt: str) -> str:
        """The text the checkpoint encodes first for ``prompt`` (extra networks removed,
        the first AND sub-prompt, the first step of prompt editing and alternation)."""

    def prompt_token_labels(self, prompt: str) -> list[list[str]] | None:
        """The token at each position of each 77-token chunk of ``prompt``, or None."""

    def warn(self, message: str) -> None:
        """Show ``message`` to the user of the current request, if the host can."""

    def input_accordion(self, value: bool, label: str, elem_id: str) -> Any:
        """The host's accordion whose open state is a checkbox value (the enable switch)."""
