"""What FlexDiffuse needs from a webui: small protocols by concern, composed into :class:`Host`.

The job code (arguments, guidance, sampling, preview, panel, settings) talks to the webui only
through a :class:`Host` object it is given, never by importing the webui's ``modules``: ruff's
banned-import rule (TID251, see pyproject.toml) enforces that outside this package and
``script.py``. Nor does it read the webui's objects (its processing object, its denoiser's
parameters, its conditioning structures): the host hands it :class:`JobSurface`,
:class:`SamplingStep` and :class:`~..conds.Schedule` instead. A new backend means one new
:class:`Host` implementation in this package; docs/development.md, "The host seam", says
where each kind of difference goes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch

from ..conds import Cond, Schedules

T = TypeVar("T")

START, END, PAD = "<start>", "<end>", ""
"""Token labels (:meth:`Host.prompt_token_labels`) of a chunk's header, its end token and
the padding after it."""


@dataclass(frozen=True)
class StepConds:
    """What one sampling step of a pass conditions on, in the host's own objects (for the
    adapters only: the job gets :class:`PassConds` from :meth:`SamplingStep.conds`).

    ``cond`` is the pass's prompt schedules (A1111: a ``MulticondLearnedConditioning``),
    ``uncond`` its negative prompt schedules (None when the host skips them, e.g. at CFG
    scale 1); ``step`` is the index of this step in the pass, ``total`` the pass's expected
    steps (0 when unknown).
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


@dataclass(frozen=True)
class PassConds:
    """A sampling pass's conditionings over its steps, as rows of its batch.

    ``negatives`` is None when the pass has no negative prompts (the host skips them, e.g.
    at CFG scale 1). A host hands the same objects for as long as the pass's conditionings
    stay the same: a new identity means a new batch or pass.
    """

    prompts: Schedules
    negatives: Schedules | None


class JobSurface(Protocol):
    """One generation job as the host runs it (A1111: its processing object ``p``): what
    the job reads of its pass and where it writes notes."""

    @property
    def infotext(self) -> MutableMapping[str, Any]:
        """The job's generation parameters, written into each image's infotext."""

    def comment(self, text: str) -> None:
        """Add ``text`` to the comments shown under the job's images."""

    def all_prompts(self) -> Sequence[str]:
        """Every prompt of the job, all batches (known from its setup on)."""

    def prompts(self) -> Sequence[str]:
        """This pass's prompts, one per image of the batch (the hires pass's own in it).

        The same object while they stay the same, so a job can read them once."""

    def conds(self) -> PassConds:
        """The conditionings the host encoded for the batch about to be sampled."""

    def plot_values(self) -> dict[str, Any]:
        """The parameter values the X/Y/Z plot set for this job's cell, by field name."""

    def set_plot_value(self, name: str, value: Any) -> None:
        """Set parameter ``name`` for this job's cell only (an X/Y/Z axis value)."""

    def plot_axes(self) -> dict[str, list[Any]]:
        """Every FlexDiffuse axis's values of the plot this job starts (its checks)."""

    def set_plot_axes(self, axes: dict[str, list[Any]]) -> None:
        """Record the plot's FlexDiffuse axes (see :meth:`plot_axes`)."""


class SamplingStep(Protocol):
    """One sampling step, as the job sees it in the host's step callback."""

    index: int
    """The index of this step in the pass."""

    total: int
    """The pass's expected steps (0 when unknown)."""

    job: JobSurface
    """The job this step samples for."""

    negative_rows: bool
    """Whether this step's batch has negative rows (False where the host skipped the
    negative prompt, e.g. Forge at CFG scale 1)."""

    def conds(self) -> PassConds:
        """The conditionings the host stacks this step's batch from."""

    def replace(self, prompt: Cond | None, negative: Cond | None) -> None:
        """Use ``prompt`` (and ``negative``) as this step's stacked batch (None: leave it).

        Raises:
            ValueError: a batch not of the shape the host stacked (another extension changed
                the conditioning first).
        """


class HookedJob(Protocol):
    """What the host's hooks call on the job attached to a processing object."""

    def sample(self, surface: JobSurface, run: Callable[[], T]) -> T:
        """Sample one batch of the job by ``run``, the host's own sampling."""

    def on_step(self, step: SamplingStep) -> None:
        """Guide one sampling step."""

    def after_batch(self, surface: JobSurface) -> None:
        """Correct the batch's record when it was not guided as claimed."""


class HostSettings(Protocol):
    """The webui's settings: FlexDiffuse's section and the values the user set."""

    def option(self, key: str, default: Any) -> Any:
        """A setting's value, or ``default`` before the settings page registered it."""

    def add_settings(self, settings: Sequence[SettingSpec]) -> None:
        """Add FlexDiffuse's section to the Settings page (an ``on_ui_settings`` callback)."""


class HostUI(Protocol):
    """The web page: the host's own components and messages."""

    def input_accordion(self, value: bool, label: str, elem_id: str) -> Any:
        """The host's accordion whose open state is a checkbox value (the enable switch)."""

    def warn(self, message: str) -> None:
        """Show ``message`` to the user of the current request, if the host can."""

    def refresh_button(self, menu: Any, choices: Callable[[], list[str]], elem_id: str) -> Any:
        """The host's refresh button beside dropdown ``menu``: it sets the menu's choices
        to ``choices()`` again."""

    def mask_editor(self, label: str, elem_id: str, height: int) -> Any:
        """The host's own image editor to paint a reference mask on a copy of an image
        (its value: see :func:`~..reference_masks.painted`)."""


class TextEncoding(Protocol):
    """The loaded checkpoint and how the host turns prompts into its conditioning."""

    def sd_model(self) -> Any:
        """The loaded Stable Diffusion model (None when none is loaded)."""

    def load_model(self) -> Any:
        """The model for work outside a job (the preview), loading the selected checkpoint
        first on hosts that load it only at the first generation; None when none loads."""

    def encode_prompt(self, text: str) -> Cond:
        """``text`` through the checkpoint's own text encoder, as the host encodes prompts."""

    def first_scheduled_text(self, prompt: str) -> str:
        """The text the checkpoint encodes first for ``prompt`` (extra networks removed,
        the first AND sub-prompt, the first step of prompt editing and alternation)."""

    def prompt_token_labels(self, prompt: str) -> list[list[str]] | None:
        """The token at each position of each 77-token chunk of ``prompt``, or None."""


class Devices(Protocol):
    """Where vision towers live: devices, the host's memory manager, model folders."""

    def tower_device_and_dtype(self, on_cpu: bool) -> tuple[torch.device, torch.dtype]:
        """Where vision towers run: the webui's device and dtype, or the CPU in float32."""

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

    def models_dir(self) -> Path:
        """The webui's models folder (FlexDiffuse downloads into its ``FlexDiffuse`` folder)."""

    def tower_folders(self) -> list[Path]:
        """Folders where the webui and its popular extensions keep CLIP vision files.

        Folders that do not exist may be listed; FlexDiffuse skips them.
        """


class Progress(Protocol):
    """The host's job queue and threads: progress text, Interrupt, exclusive use."""

    def set_progress_text(self, text: str | None) -> None:
        """Show ``text`` as the running job's progress text in the web page (None: clear it)."""

    def stop_requested(self) -> bool:
        """Whether the user asked the running job to stop (Interrupt) or skip this image."""

    def interrupt(self) -> None:
        """Stop the current sampling loop at its next step."""

    def exclusive(self) -> contextlib.AbstractContextManager[None]:
        """Hold the webui's job queue while the loaded checkpoint is used outside a job."""

    def on_load(self) -> None:
        """Adapt the host once FlexDiffuse is loaded (e.g. so that a job's error reaches
        the UI); safe to call again when the webui reloads its scripts."""


class SamplingHooks(Protocol):
    """How a job is attached to the host's generation and sees its sampling steps."""

    def attach(self, p: Any, job: HookedJob) -> JobSurface:
        """Make ``job`` the job of the host's processing object ``p``: the host calls
        :meth:`HookedJob.sample` around each batch's sampling and :meth:`HookedJob.on_step`
        at each step. Returns the job's surface."""

    def job_of(self, p: Any) -> HookedJob | None:
        """The job attached to processing object ``p`` (None: it has none)."""

    def surface(self, p: Any) -> JobSurface:
        """Processing object ``p`` as a :class:`JobSurface`."""

    def on_step(self, params: Any) -> None:
        """Hand the step of the host's denoiser callback (``params``) to its job, if any."""

    def conditioning_override(self) -> str | None:
        """Why something the host runs after the step callbacks replaces the guided
        conditioning of the current job (a note for the user), or None."""


class Host(HostSettings, HostUI, TextEncoding, Devices, Progress, SamplingHooks, Protocol):
    """Everything FlexDiffuse reads from or asks of the webui it runs in."""

    name: str
    """The webui, as messages name it."""

    unsupported: str | None
    """Why guided jobs cannot run on this host (shown in the panel and raised), or None."""
