"""One guided generation: its guidance is built once and applied at every sampling step.

Webuis swallow exceptions raised in script hooks and in step callbacks (they log them and go
on without the script), which would make a failed job a silently unguided one. So a job
stops with its error from around that job's own sampling (:meth:`GuidedJob.sample`, which
the host calls without such a guard): errors found in ``process`` are raised there, and an
error in a step callback interrupts sampling and is raised when it returns.

Guidance does not depend on that, though: an extension may replace the host's sampling
without calling the previous one. The guidance is then built at the first guided step, and
an error or a job that guided no step is written into the image's comments and infotext
(:meth:`GuidedJob.after_batch`), never reported as guided.

Nothing here reads the host's objects: the host attaches a job to its processing object
and hands it a :class:`~.hosts.JobSurface` and :class:`~.hosts.SamplingStep` (``hosts/base.py``).
A job is a :class:`GuidedJob` or, when it could not be set up, a :class:`FailedJob`; a
guided job is guiding, stopped part-way (:class:`Stopped`) or failed (:class:`Failed`).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch

from ..engine import PURE_IMAGE_WARNING
from ..guidance import ConditioningGuide
from ..guides import is_empty_prompt
from .args import ScriptArgs
from .conds import Cond, GuidedRowCache, cond_rows, cond_width, token_states
from .errors import FlexDiffuseError, mark_job_error
from .hosts import Host, JobSurface, PassConds, SamplingStep
from .infotext import ENABLED_KEY, NOTE_KEY

logger = logging.getLogger(__name__)

T = TypeVar("T")

NO_NEGATIVE_PROMPT = (
    "FlexDiffuse's negative image guided no step of a pass without a negative prompt: at CFG "
    "scale 1 (and Hires CFG scale 1) the webui drops the negative prompt or it cancels out. "
    "Raise it above 1 to use a negative image."
)


@dataclass(frozen=True)
class JobGuides:
    """How a job guides its prompts and its negative prompts (None: left as they are), and
    the checkpoint's encoded empty prompt, which tells an empty prompt by its states (None:
    no prompt is taken as empty)."""

    prompt: ConditioningGuide | None
    negative: ConditioningGuide | None
    empty_prompt: torch.Tensor | None = None


BuildGuides = Callable[[int], JobGuides]
"""Builds a job's guides for the loaded checkpoint, whose conditioning has the given width."""


@dataclass(frozen=True)
class Guiding:
    """A guided job that guides every step of its window (its guides built when first needed)."""


@dataclass(frozen=True)
class Stopped:
    """A guided job that stopped guiding part-way (a checkpoint it cannot guide); its images
    carry the note."""

    note: str


@dataclass(frozen=True)
class Failed:
    """A guided job that stopped with ``error``; sampling is interrupted and it is raised."""

    error: BaseException


JobState = Guiding | Stopped | Failed


@dataclass
class BuiltGuides:
    """A job's guides for one checkpoint, with the guided rows of the pass being sampled."""

    guides: JobGuides
    model: Any  # the checkpoint they were built for (compared by identity)
    prompts: GuidedRowCache | None
    negatives: GuidedRowCache | None
    seen: PassConds | None = None  # the conditionings the caches hold rows of

    @classmethod
    def of(cls, guides: JobGuides, model: Any) -> BuiltGuides:
        prompt, negative = guides.prompt, guides.negative
        prompts = negatives = None
        if prompt is not None:
            empty = guides.empty_prompt

            def is_empty(cond: Cond) -> bool:
                return is_empty_prompt(token_states(cond), empty)

            prompts = GuidedRowCache(lambda cond, pure: _guide_cond(prompt, cond, pure), is_empty)
        if negative is not None:
            # An empty negative prompt is guided like any other: it has no image to take over.
            negatives = GuidedRowCache(lambda cond, _: _guide_cond(negative, cond, False))
        return cls(guides, model, prompts, negatives)

    def prepare(self, conds: PassConds) -> None:
        """Guide every conditioning of a new batch or pass (errors surface here)."""
        if self.prompts is not None:
            self.prompts.clear()
            self.prompts.prepare(cond_rows(conds.prompts, None))
        if self.negatives is not None and conds.negatives is not None:
            self.negatives.clear()
            self.negatives.prepare(cond_rows(conds.negatives, None))
        self.seen = conds

    def holds(self, conds: PassConds) -> bool:
        seen = self.seen
        return (
            seen is not None and seen.prompts is conds.prompts and seen.negatives is conds.negatives
        )


@dataclass
class JobNotes:
    """What a job told the user already (each note once per job)."""

    given: set[str] = field(default_factory=set)
    warned_pure: bool = False


class _AttachedJob(ABC):
    """What every job attached to a processing object does around the host's sampling."""

    def __init__(self, host: Host) -> None:
        self._host = host

    @property
    @abstractmethod
    def error(self) -> BaseException | None:
        """The error this job stopped with, if any."""

    @abstractmethod
    def on_step(self, step: SamplingStep) -> None:
        """Guide one sampling step (see :meth:`GuidedJob.on_step`)."""

    @abstractmethod
    def after_batch(self, surface: JobSurface) -> None:
        """Correct the batch's record when it was not guided as claimed."""

    def raise_error(self) -> None:
        """Raise the error this job stopped with, if any."""
        if self.error is not None:
            raise self.error

    def sample(self, surface: JobSurface, run: Callable[[], T]) -> T:
        """Sample one batch by ``run``, stopping with the job's error before or after it."""
        try:
            self.before_sampling(surface)
            result = run()
            self.raise_error()
        except FlexDiffuseError as error:
            # The X/Y/Z plot swallows a cell's error; its cells share the comments, and
            # the UI can show a toast.
            surface.comment(f"FlexDiffuseError: {error}")
            self._host.warn(f"FlexDiffuse: {error}")
            raise
        except Exception as error:
            if error is self.error:  # guiding failed: the host may show it as ours
                mark_job_error(error)
            raise
        return result

    def before_sampling(self, surface: JobSurface) -> None:
        self.raise_error()

    def attach(self, p: Any) -> JobSurface:
        """Make this the job of the host's processing object ``p``."""
        return self._host.attach(p, self)


def unclaim(surface: JobSurface, note: str) -> None:
    """Record that a batch was not guided as its infotext claims, and why."""
    if surface.infotext.get(ENABLED_KEY) == "True":
        surface.infotext[ENABLED_KEY] = "False"
    surface.infotext[NOTE_KEY] = note
    surface.comment(note)


class FailedJob(_AttachedJob):
    """A job that could not be set up: it stops with ``error`` as soon as sampling starts."""

    def __init__(self, error: BaseException, host: Host) -> None:
        super().__init__(host)
        self._error = error

    @property
    def error(self) -> BaseException:
        return self._error

    def on_step(self, step: SamplingStep) -> None:
        pass  # never guides

    def after_batch(self, surface: JobSurface) -> None:
        unclaim(surface, f"FlexDiffuse stopped: {self._error}")


class GuidedJob(_AttachedJob):
    """The guidance of one processing object, from ``process`` to the last sampling step."""

    def __init__(self, args: ScriptArgs, build: BuildGuides, host: Host) -> None:
        super().__init__(host)
        self.args = args
        self.state: JobState = Guiding()
        self.built: BuiltGuides | None = None
        self.guided_steps = 0
        self._build = build
        self._notes = JobNotes()

    @property
    def error(self) -> BaseException | None:
        return self.state.error if isinstance(self.state, Failed) else None

    @property
    def guides(self) -> JobGuides | None:
        """The guides for the checkpoint sampled last (None before the first batch)."""
        return self.built.guides if self.built is not None else None

    def before_sampling(self, surface: JobSurface) -> None:
        """Build the guides (first batch only) and guide this batch's prompts, so that any
        problem stops the job before its first step."""
        self.raise_error()
        self._guarded(lambda: self._prepare(surface.conds(), surface))

    def on_step(self, step: SamplingStep) -> None:
        """Replace this step's prompt (and negative) rows by their guided rows.

        Outside the guidance window, and once guidance stopped, the step is left alone. An
        error is kept, sampling is interrupted, and the error is raised again when sampling
        returns.
        """
        if not isinstance(self.state, Guiding) or not self._in_window(step):
            return
        self._guarded(lambda: self._guide_step(step), interrupt=True)

    def after_batch(self, surface: JobSurface) -> None:
        """Say so in the comments and infotext when this job did not guide as it claims."""
        if isinstance(self.state, Failed):
            unclaim(surface, f"FlexDiffuse stopped: {self.state.error}")
        elif self.guided_steps == 0:
            notes = self._notes.given
            why = f": {' '.join(sorted(notes))}" if notes else " (see the console)."
            unclaim(surface, f"FlexDiffuse guided no step of this job{why}")

    # ----------------------------------------------------------------- internals

    def _guarded(self, action: Callable[[], None], interrupt: bool = False) -> None:
        try:
            action()
        except Exception as error:
            failed = FlexDiffuseError(str(error)) if isinstance(error, ValueError) else error
            self.state = Failed(failed)
            if interrupt:
                self._host.interrupt()
            raise failed from error

    def _prepare(self, conds: PassConds, surface: JobSurface) -> None:
        built = self._ensure_guides(conds, surface)
        if built is not None:
            built.prepare(conds)
            self._warn_pure(built, surface)

    def _guide_step(self, step: SamplingStep) -> None:
        surface, conds = step.job, step.conds()
        built = self._ensure_guides(conds, surface)
        if built is None:
            return
        if not built.holds(conds):  # a new batch or pass
            built.prepare(conds)
        override = self._host.conditioning_override()
        if override is not None:
            self._note(surface, override)
        guided_any = False
        if built.prompts is not None:
            rows = cond_rows(conds.prompts, step.index)
            step.replace(built.prompts.batch(rows), None)
            self._warn_pure(built, surface)
            guided_any = True
        if built.negatives is not None and (conds.negatives is None or not step.negative_rows):
            self._note(surface, NO_NEGATIVE_PROMPT)  # Forge at CFG scale 1: no negative rows
        elif built.negatives is not None and conds.negatives is not None:
            rows = cond_rows(conds.negatives, step.index)
            step.replace(None, built.negatives.batch(rows))
            guided_any = True
        if guided_any:
            self.guided_steps += 1

    def _ensure_guides(self, conds: PassConds, surface: JobSurface) -> BuiltGuides | None:
        """The guides for the loaded checkpoint; None once guidance had to stop.

        A checkpoint switch during the job (the refiner, a hires checkpoint) gets guides of
        its own, or stops guidance with a note when FlexDiffuse cannot guide it: a
        conditioning is never guided with another checkpoint's vision towers.
        """
        model = self._host.sd_model()
        built = self.built
        if built is not None and model is built.model:
            return built
        try:
            guides = self._build(cond_width(conds.prompts))
        except FlexDiffuseError as error:
            if built is None:
                raise
            self._stop(surface, f"the checkpoint changed during the job. {error}")
            return None
        self.built = BuiltGuides.of(guides, model)
        return self.built

    def _stop(self, surface: JobSurface, reason: str) -> None:
        note = f"FlexDiffuse stopped guiding part-way: {reason}"
        self.state = Stopped(note)
        logger.warning(note)
        surface.infotext[NOTE_KEY] = note
        surface.comment(note)

    def _note(self, surface: JobSurface, note: str) -> None:
        """Say ``note`` once per job, under the images and in the infotext."""
        if note in self._notes.given:
            return
        self._notes.given.add(note)
        logger.warning(note)
        surface.comment(note)
        surface.infotext.setdefault(NOTE_KEY, note)

    def _in_window(self, step: SamplingStep) -> bool:
        """Whether this step lies in the guidance window (start..end, fractions of the run)."""
        start, end = self.args.params.start, self.args.params.end
        if start == 0 and end == 1:
            return True
        progress = step.index / step.total if step.total else 0.0
        return start <= progress <= end

    def _warn_pure(self, built: BuiltGuides, surface: JobSurface) -> None:
        """Say once per job that an empty prompt took the image (the engine logs it)."""
        if built.prompts is None or not built.prompts.took_image or self._notes.warned_pure:
            return
        self._notes.warned_pure = True
        surface.comment(PURE_IMAGE_WARNING)
        surface.infotext.setdefault(NOTE_KEY, PURE_IMAGE_WARNING)


Job = GuidedJob | FailedJob
"""A job attached to a processing object."""


def _guide_cond(guide: ConditioningGuide, cond: Cond, empty: bool) -> Cond:
    if isinstance(cond, dict):  # SDXL: token states and the pooled vector
        guided = dict(cond)
        guided["crossattn"] = guide.apply(cond["crossattn"], pure=empty)
        guided["vector"] = guide.apply_pooled(cond["vector"])
        return guided
    return guide.apply(cond, pure=empty)
