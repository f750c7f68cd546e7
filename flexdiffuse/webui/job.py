"""One guided generation: its guidance is built once and applied at every sampling step.

Webuis swallow exceptions raised in script hooks and in ``on_cfg_denoiser`` callbacks (they
log them and go on without the script), which would make a failed job a silently unguided
one. So a job stops with its error from a wrapper around that job's own ``p.sample``, which
the webui calls without such a guard: errors found in ``process`` are raised there, and an
error in a step callback interrupts sampling and is raised when it returns.

Guidance does not depend on that wrapper, though: an extension may replace ``p.sample``
without calling the previous one. The guidance is then built at the first guided step, and
an error or a job that guided no step is written into the image's comments and infotext
(:meth:`GuidedJob.after_batch`), never reported as guided. Nothing here imports the webui;
``p`` and the callback parameters are read by duck typing, the rest through the host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import PURE_IMAGE_WARNING
from ..guidance import ConditioningGuide
from .args import ScriptArgs
from .conds import Cond, GuidedRowCache, cond_rows, cond_width, token_states, uncond_rows
from .errors import FlexDiffuseError, mark_job_error
from .hosts import Host, StepConds
from .infotext import ENABLED_KEY, NOTE_KEY

logger = logging.getLogger(__name__)

JOB_ATTRIBUTE = "flexdiffuse_job"
"""Name of the attribute that holds a processing object's job (absent: not guided)."""

NO_NEGATIVE_PROMPT = (
    "FlexDiffuse's negative image guided no step of a pass without a negative prompt: at CFG "
    "scale 1 (and Hires CFG scale 1) the webui drops the negative prompt or it cancels out. "
    "Raise it above 1 to use a negative image."
)


@dataclass(frozen=True)
class JobGuides:
    """How a job guides its prompts and its negative prompts (None: left as they are)."""

    prompt: ConditioningGuide | None
    negative: ConditioningGuide | None


BuildGuides = Callable[[int], JobGuides]
"""Builds a job's guides for the loaded checkpoint, whose conditioning has the given width."""


def job_of(p: Any) -> GuidedJob | None:
    """The guided job of processing object ``p``, if it has one."""
    return getattr(p, JOB_ATTRIBUTE, None) if p is not None else None


class GuidedJob:
    """The guidance of one processing object, from ``process`` to the last sampling step."""

    def __init__(
        self,
        args: ScriptArgs | None,
        build: BuildGuides | None,
        host: Host,
        *,
        error: BaseException | None = None,
    ) -> None:
        self.args = args
        self.error = error
        self.guides: JobGuides | None = None
        self.guided_steps = 0
        self.stopped: str | None = None  # why guidance stopped part-way, if it did
        self._build = build
        self._host = host
        self._model: Any = None  # the checkpoint the guides were built for
        self._prompts: GuidedRowCache | None = None
        self._negatives: GuidedRowCache | None = None
        self._seen: tuple[Any, Any] = (None, None)  # the step conds the caches hold rows of
        self._warned_pure = False
        self._noted: set[str] = set()  # notes already given for this job
        self._empty: tuple[Sequence[str], list[bool]] | None = None  # prompts, their flags

    @classmethod
    def failed(cls, error: BaseException, host: Host) -> GuidedJob:
        """A job that stops with ``error`` as soon as sampling starts."""
        return cls(None, None, host, error=error)

    def attach(self, p: Any) -> None:
        """Make this the job of ``p`` and route ``p.sample`` through it."""
        setattr(p, JOB_ATTRIBUTE, self)
        sample = p.sample

        def sample_guided(*args: Any, **kwargs: Any) -> Any:
            try:
                self.before_sampling(p)
                result = sample(*args, **kwargs)
                self.raise_error()
            except FlexDiffuseError as error:
                # The X/Y/Z plot swallows a cell's error; its cells share the comments, and
                # the UI can show a toast.
                p.comment(f"FlexDiffuseError: {error}")
                self._host.warn(f"FlexDiffuse: {error}")
                raise
            except Exception as error:
                if error is self.error:  # guiding failed: the host may show it as ours
                    mark_job_error(error)
                raise
            return result

        p.sample = sample_guided

    def raise_error(self) -> None:
        """Raise the error this job stopped with, if any."""
        if self.error is not None:
            raise self.error

    def before_sampling(self, p: Any) -> None:
        """Build the guides (first batch only) and guide this batch's prompts, so that any
        problem stops the job before its first step."""
        self.raise_error()
        self._guarded(lambda: self._prepare(p.c, p.uc, p))

    def on_step(self, params: Any) -> None:
        """Replace this step's prompt (and negative) rows by their guided rows.

        ``params`` is the webui's ``CFGDenoiserParams``. Outside the guidance window, and
        once guidance stopped, the step is left alone. An error is kept, sampling is
        interrupted, and the error is raised again when sampling returns.
        """
        if self.error is not None or self.stopped is not None:
            return
        conds = self._host.step_conds(params)
        if not self._in_window(conds):
            return
        p = params.denoiser.p
        self._guarded(lambda: self._guide_step(params, conds, p), interrupt=True)

    def after_batch(self, p: Any) -> None:
        """Say so in the comments and infotext when this job did not guide as it claims."""
        if self.error is not None:
            self._unclaim(p, f"FlexDiffuse stopped: {self.error}")
        elif self.guided_steps == 0 and self.args is not None:
            why = f": {' '.join(sorted(self._noted))}" if self._noted else " (see the console)."
            self._unclaim(p, f"FlexDiffuse guided no step of this job{why}")

    # ----------------------------------------------------------------- internals

    def _guarded(self, action: Callable[[], None], interrupt: bool = False) -> None:
        try:
            action()
        except Exception as error:
            self.error = FlexDiffuseError(str(error)) if isinstance(error, ValueError) else error
            if interrupt:
                self._host.interrupt()
            raise self.error from error

    def _prepare(self, cond: Any, uncond: Any, p: Any) -> None:
        self._ensure_guides(cond, p)
        if self._prompts is not None:
            self._prompts.clear()
            self._prompts.prepare(cond_rows(cond, None), self._empty_prompts(p))
        if self._negatives is not None and uncond is not None:
            self._negatives.clear()
            self._negatives.prepare(uncond_rows(uncond, None), ())
        self._seen = (cond, uncond)

    def _guide_step(self, params: Any, conds: StepConds, p: Any) -> None:
        if not self._ensure_guides(conds.cond, p):
            return
        seen_cond, seen_uncond = self._seen
        if seen_cond is not conds.cond or seen_uncond is not conds.uncond:  # new batch or pass
            self._prepare(conds.cond, conds.uncond, p)
        override = self._host.conditioning_override()
        if override is not None:
            self._note(p, override)
        guided_any = False
        if self._prompts is not None:
            rows = cond_rows(conds.cond, conds.step)
            guided = self._prompts.batch(rows, self._empty_prompts(p))
            params.text_cond = _replace_rows(params.text_cond, guided)
            guided_any = True
        if self._negatives is not None and (conds.uncond is None or params.text_uncond is None):
            self._note(p, NO_NEGATIVE_PROMPT)  # Forge at CFG scale 1: no negative rows at all
        elif self._negatives is not None:
            rows = uncond_rows(conds.uncond, conds.step)
            guided = self._negatives.batch(rows, ())
            params.text_uncond = _replace_rows(params.text_uncond, guided)
            guided_any = True
        if guided_any:
            self.guided_steps += 1

    def _ensure_guides(self, cond: Any, p: Any) -> bool:
        """Build the guides for the loaded checkpoint; False once guidance had to stop.

        A checkpoint switch during the job (the refiner, a hires checkpoint) gets guides of
        its own, or stops guidance with a note when FlexDiffuse cannot guide it: a
        conditioning is never guided with another checkpoint's vision towers.
        """
        model = self._host.sd_model()
        if self.guides is not None and model is self._model:
            return True
        assert self._build is not None
        switched = self.guides is not None
        try:
            guides = self._build(cond_width(cond))
        except FlexDiffuseError as error:
            if not switched:
                raise
            self._stop(p, f"the checkpoint changed during the job. {error}")
            return False
        self._set_guides(guides, model)
        return True

    def _stop(self, p: Any, reason: str) -> None:
        self.stopped = f"FlexDiffuse stopped guiding part-way: {reason}"
        logger.warning(self.stopped)
        p.extra_generation_params[NOTE_KEY] = self.stopped
        p.comment(self.stopped)

    def _note(self, p: Any, note: str) -> None:
        """Say ``note`` once per job, under the images and in the infotext."""
        if note in self._noted:
            return
        self._noted.add(note)
        logger.warning(note)
        p.comment(note)
        p.extra_generation_params.setdefault(NOTE_KEY, note)

    def _unclaim(self, p: Any, note: str) -> None:
        if p.extra_generation_params.get(ENABLED_KEY) == "True":
            p.extra_generation_params[ENABLED_KEY] = "False"
        p.extra_generation_params[NOTE_KEY] = note
        p.comment(note)

    def _in_window(self, conds: StepConds) -> bool:
        """Whether this step lies in the guidance window (start..end, fractions of the run)."""
        assert self.args is not None
        start, end = self.args.params.start, self.args.params.end
        if start == 0 and end == 1:
            return True
        progress = conds.step / conds.total if conds.total else 0.0
        return start <= progress <= end

    def _set_guides(self, guides: JobGuides, model: Any) -> None:
        self.guides, self._model = guides, model
        prompt, negative = guides.prompt, guides.negative
        self._prompts = self._negatives = None
        if prompt is not None:
            self._prompts = GuidedRowCache(lambda cond, empty: _guide_cond(prompt, cond, empty))
        if negative is not None:
            # An empty negative prompt is guided like any other: it has no image to take over.
            self._negatives = GuidedRowCache(lambda cond, _: _guide_cond(negative, cond, False))
        self._seen = (None, None)

    def _empty_prompts(self, p: Any) -> list[bool]:
        """Which prompts of this pass are empty; read once per prompt list, not every step."""
        prompts: Sequence[str] = p.hr_prompts if getattr(p, "is_hr_pass", False) else p.prompts
        if self._empty is not None and self._empty[0] is prompts:
            return self._empty[1]
        empty = [not prompt.strip() for prompt in prompts]
        self._empty = (prompts, empty)
        if any(empty) and not self._warned_pure:
            self._warned_pure = True  # the engine logs it; this shows it under the images
            p.comment(PURE_IMAGE_WARNING)
            p.extra_generation_params.setdefault(NOTE_KEY, PURE_IMAGE_WARNING)
        return empty


def _guide_cond(guide: ConditioningGuide, cond: Cond, empty: bool) -> Cond:
    if isinstance(cond, dict):  # SDXL: token states and the pooled vector
        guided = dict(cond)
        guided["crossattn"] = guide.apply(cond["crossattn"], pure=empty)
        guided["vector"] = guide.apply_pooled(cond["vector"])
        return guided
    return guide.apply(cond, pure=empty)


def _replace_rows(text_cond: Cond, guided: Cond) -> Cond:
    """``guided`` in the form of ``text_cond`` (SDXL's dict keeps its class), shapes checked."""
    old, new = token_states(text_cond), token_states(guided)
    if old.shape != new.shape:
        raise ValueError(
            f"This step's conditioning has shape {tuple(old.shape)}, but FlexDiffuse "
            f"built {tuple(new.shape)} from the job's prompts: another extension changed the "
            "conditioning before FlexDiffuse. Disable it or FlexDiffuse for this job."
        )
    if not isinstance(text_cond, dict):
        return guided
    replaced = type(text_cond).__new__(type(text_cond))  # the webui's DictWithShape keeps .shape
    replaced.update(text_cond)
    replaced.update(guided)
    return replaced
