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
from typing import Any

from ..engine import PURE_IMAGE_WARNING
from ..guidance import ImageGuidance
from .args import GuidanceRequest
from .conds import Cond, GuidedBatches, cond_rows
from .errors import FlexDiffuseError

JOB_ATTRIBUTE = "flexdiffuse_job"
"""Name of the attribute that holds a processing object's job (absent: not guided)."""

BuildGuidance = Callable[[Any], ImageGuidance]
"""Builds the guidance of a job from its processing object (encodes the image, concepts)."""


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
        self.guidance: ImageGuidance | None = None
        self._build = build
        self._interrupt = interrupt
        self._conds = GuidedBatches(self._guide)
        self._warned_pure = False

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
                self.guidance = self._build(p)
            self._conds.clear()
            self._conds.prepare(cond_rows(p.c, None), self._empty_prompts(p))
        except ValueError as error:
            self.error = FlexDiffuseError(str(error))
            raise self.error from error

    def on_step(self, params: Any) -> None:
        """Replace the prompt rows of this step's ``text_cond`` by their guided rows.

        ``params`` is A1111's ``CFGDenoiserParams``. An error is kept, sampling is
        interrupted, and the error is raised again when sampling returns.
        """
        if self.error is not None or self.guidance is None:
            return
        try:
            denoiser = params.denoiser
            cond = denoiser.sampler.sampler_extra_args["cond"]
            guided = self._conds.batch(
                cond_rows(cond, denoiser.step), self._empty_prompts(denoiser.p)
            )
            params.text_cond = _replace_rows(params.text_cond, guided)
        except Exception as error:
            self.error = FlexDiffuseError(str(error)) if isinstance(error, ValueError) else error
            self._interrupt()
            raise

    def _guide(self, cond: Cond, empty: bool) -> Cond:
        assert self.guidance is not None
        if isinstance(cond, dict):  # SDXL: token states and the pooled vector
            guided = dict(cond)
            guided["crossattn"] = self.guidance.apply(cond["crossattn"], pure=empty)
            guided["vector"] = self.guidance.apply_pooled(cond["vector"])
            return guided
        return self.guidance.apply(cond, pure=empty)

    def _empty_prompts(self, p: Any) -> list[bool]:
        prompts: Sequence[str] = p.hr_prompts if getattr(p, "is_hr_pass", False) else p.prompts
        empty = [not prompt.strip() for prompt in prompts]
        if any(empty) and not self._warned_pure:
            self._warned_pure = True  # the engine logs it; this shows it under the images
            if hasattr(p, "comment"):
                p.comment(PURE_IMAGE_WARNING)
        return empty


def _replace_rows(text_cond: Cond, guided: Cond) -> Cond:
    """``guided`` in the form of ``text_cond`` (SDXL's dict keeps its class), shapes checked."""
    old = text_cond["crossattn"] if isinstance(text_cond, dict) else text_cond
    new = guided["crossattn"] if isinstance(guided, dict) else guided
    if old.shape != new.shape:
        raise ValueError(
            f"This step's prompt conditioning has shape {tuple(old.shape)}, but FlexDiffuse "
            f"built {tuple(new.shape)} from the job's prompts: another extension changed the "
            "conditioning before FlexDiffuse. Disable it or FlexDiffuse for this job."
        )
    if not isinstance(text_cond, dict):
        return guided
    replaced = type(text_cond).__new__(type(text_cond))  # A1111's DictWithShape keeps .shape
    replaced.update(text_cond)
    replaced.update(guided)
    return replaced
