"""One guided generation: its guidance is built before sampling and applied at every step.

A1111 swallows exceptions raised in script hooks and in ``on_cfg_denoiser`` callbacks (it logs
them and goes on without the script), which would make a failed job a silently unguided one.
So a job stops with its error from a wrapper around that job's own ``p.sample``, which A1111
calls without such a guard: errors found in ``process`` are raised there, and an error in a
step callback interrupts sampling and is raised when it returns. Nothing here imports A1111;
the processing object ``p`` and the callback parameters are read by duck typing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import PURE_IMAGE_WARNING
from ..guidance import ImageGuidance
from .args import GuidanceRequest
from .conds import Cond, GuidedBatches, cond_rows, token_states, uncond_rows
from .errors import FlexDiffuseError

JOB_ATTRIBUTE = "flexdiffuse_job"
"""Name of the attribute that holds a processing object's job (absent: not guided)."""


@dataclass(frozen=True)
class JobGuidance:
    """A job's guidance of its prompts and of its negative prompts (None: left as they are)."""

    prompt: ImageGuidance | None
    negative: ImageGuidance | None


BuildGuidance = Callable[[Any], JobGuidance]
"""Builds the guidance of a job from its processing object (encodes the images, concepts)."""


def job_of(p: Any) -> GuidedJob | None:
    """The guided job of processing object ``p``, if it has one."""
    return getattr(p, JOB_ATTRIBUTE, None) if p is not None else None


class GuidedJob:
    """The guidance of one processing object, from ``process`` to the last sampling step."""

    def __init__(
        self,
        request: GuidanceRequest | None,
        build: BuildGuidance | None = None,
        *,
        error: BaseException | None = None,
        interrupt: Callable[[], None] = lambda: None,
    ) -> None:
        self.request = request
        self.error = error
        self.guidance: JobGuidance | None = None
        self._build = build
        self._interrupt = interrupt
        self._prompts: GuidedBatches | None = None  # set with the guidance it applies
        self._negatives: GuidedBatches | None = None
        self._warned_pure = False
        self._empty: tuple[Sequence[str], list[bool]] | None = None  # prompts, their flags

    @classmethod
    def failed(cls, error: BaseException) -> GuidedJob:
        """A job that stops with ``error`` as soon as sampling starts."""
        return cls(None, error=error)

    def attach(self, p: Any) -> None:
        """Make this the job of ``p`` and route ``p.sample`` through it."""
        setattr(p, JOB_ATTRIBUTE, self)
        sample = p.sample

        def sample_guided(*args: Any, **kwargs: Any) -> Any:
            self.before_sampling(p)
            result = sample(*args, **kwargs)
            self.raise_error()
            return result

        p.sample = sample_guided

    def raise_error(self) -> None:
        """Raise the error this job stopped with, if any."""
        if self.error is not None:
            raise self.error

    def before_sampling(self, p: Any) -> None:
        """Build the guidance (first batch only) and guide this batch's prompts."""
        self.raise_error()
        try:
            if self.guidance is None:
                assert self._build is not None
                self._set_guidance(self._build(p))
            if self._prompts is not None:
                self._prompts.clear()
                self._prompts.prepare(cond_rows(p.c, None), self._empty_prompts(p))
            if self._negatives is not None:
                self._negatives.clear()
                self._negatives.prepare(uncond_rows(p.uc, None), ())
        except ValueError as error:
            self.error = FlexDiffuseError(str(error))
            raise self.error from error

    def on_step(self, params: Any) -> None:
        """Replace this step's prompt (and negative) rows by their guided rows.

        ``params`` is A1111's ``CFGDenoiserParams``. Outside the guidance window the step is
        left alone. An error is kept, sampling is interrupted, and the error is raised again
        when sampling returns.
        """
        if self.error is not None or self.guidance is None or not self._in_window(params):
            return
        try:
            denoiser = params.denoiser
            conds = denoiser.sampler.sampler_extra_args
            if self._prompts is not None:
                rows = cond_rows(conds["cond"], denoiser.step)
                guided = self._prompts.batch(rows, self._empty_prompts(denoiser.p))
                params.text_cond = _replace_rows(params.text_cond, guided)
            if self._negatives is not None:
                rows = uncond_rows(conds["uncond"], denoiser.step)
                guided = self._negatives.batch(rows, ())
                params.text_uncond = _replace_rows(params.text_uncond, guided)
        except Exception as error:
            self.error = FlexDiffuseError(str(error)) if isinstance(error, ValueError) else error
            self._interrupt()
            raise

    def _in_window(self, params: Any) -> bool:
        """Whether this step lies in the guidance window (start..end, fractions of the run)."""
        assert self.request is not None
        start, end = self.request.params.start, self.request.params.end
        if start == 0 and end == 1:
            return True
        denoiser = params.denoiser
        # The denoiser counts its own calls against the calls expected for this pass (A1111
        # measures the refiner switch the same way); the state's counters are the fallback.
        step, total = denoiser.step, getattr(denoiser, "total_steps", None)
        if not total:
            step, total = params.sampling_step, params.total_sampling_steps
        progress = step / total if total else 0.0
        return start <= progress <= end

    def _set_guidance(self, guidance: JobGuidance) -> None:
        self.guidance = guidance
        prompt, negative = guidance.prompt, guidance.negative
        if prompt is not None:
            self._prompts = GuidedBatches(lambda cond, empty: _guide_cond(prompt, cond, empty))
        if negative is not None:
            # An empty negative prompt is guided like any other: it has no image to take over.
            self._negatives = GuidedBatches(lambda cond, _: _guide_cond(negative, cond, False))

    def _empty_prompts(self, p: Any) -> list[bool]:
        """Which prompts of this pass are empty; read once per prompt list, not every step."""
        prompts: Sequence[str] = p.hr_prompts if getattr(p, "is_hr_pass", False) else p.prompts
        if self._empty is not None and self._empty[0] is prompts:
            return self._empty[1]
        empty = [not prompt.strip() for prompt in prompts]
        self._empty = (prompts, empty)
        if any(empty) and not self._warned_pure:
            self._warned_pure = True  # the engine logs it; this shows it under the images
            if hasattr(p, "comment"):
                p.comment(PURE_IMAGE_WARNING)
        return empty


def _guide_cond(guidance: ImageGuidance, cond: Cond, empty: bool) -> Cond:
    if isinstance(cond, dict):  # SDXL: token states and the pooled vector
        guided = dict(cond)
        guided["crossattn"] = guidance.apply(cond["crossattn"], pure=empty)
        guided["vector"] = guidance.apply_pooled(cond["vector"])
        return guided
    return guidance.apply(cond, pure=empty)


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
    replaced = type(text_cond).__new__(type(text_cond))  # A1111's DictWithShape keeps .shape
    replaced.update(text_cond)
    replaced.update(guided)
    return replaced
