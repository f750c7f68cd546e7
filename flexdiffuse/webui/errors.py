"""The one error type a FlexDiffuse job stops with, and the messages of more than one way in."""

from __future__ import annotations

from ..messages import as_sentence

__all__ = [
    "NO_GUIDANCE_IMAGE",
    "PLOTTED_BUT_OFF",
    "FlexDiffuseError",
    "as_sentence",
    "is_job_error",
    "mark_job_error",
]


class FlexDiffuseError(RuntimeError):
    """A guided job cannot run as asked; the message says what is wrong and what to do.

    A1111 shows the type name and the message in the UI and in the API's error body, so the
    name reads as the source of the problem: ``FlexDiffuseError: <message>``.
    """


PLOTTED_BUT_OFF = (
    "X/Y/Z plot: the plot sets FlexDiffuse parameters, but FlexDiffuse is off. Open the "
    "FlexDiffuse panel (its checkbox enables it) and give it a guidance image."
)
"""Refuses a plot that sets FlexDiffuse parameters before it starts, or its cell."""

NO_GUIDANCE_IMAGE = (
    "FlexDiffuse is enabled but has no guidance image. Drop an image into the FlexDiffuse "
    "panel or pick a saved reference (or send one with the request), or close the "
    "FlexDiffuse panel."
)


_JOB_ERROR = "flexdiffuse_job_error"


def mark_job_error(error: BaseException) -> None:
    """Mark ``error`` as the one a guided job stopped with (see :func:`is_job_error`)."""
    setattr(error, _JOB_ERROR, True)


def is_job_error(error: BaseException) -> bool:
    """Whether a job stopped with ``error`` because of FlexDiffuse (not another part of the
    webui): host adapters use it to show FlexDiffuse's own errors, and no one else's."""
    return isinstance(error, FlexDiffuseError) or getattr(error, _JOB_ERROR, False)
