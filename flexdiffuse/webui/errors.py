"""The one error type a FlexDiffuse job stops with."""

from __future__ import annotations


class FlexDiffuseError(RuntimeError):
    """A guided job cannot run as asked; the message says what is wrong and what to do.

    A1111 shows the type name and the message in the UI and in the API's error body, so the
    name reads as the source of the problem: ``FlexDiffuseError: <message>``.
    """


def as_sentence(text: object) -> str:
    """``text`` ending in exactly one full stop (or its own ! or ?), to join into a message."""
    words = str(text).strip().rstrip(".")
    return f"{words}." if words and words[-1] not in "!?" else words


_JOB_ERROR = "flexdiffuse_job_error"


def mark_job_error(error: BaseException) -> None:
    """Mark ``error`` as the one a guided job stopped with (see :func:`is_job_error`)."""
    setattr(error, _JOB_ERROR, True)


def is_job_error(error: BaseException) -> bool:
    """Whether a job stopped with ``error`` because of FlexDiffuse (not another part of the
    webui): host adapters use it to show FlexDiffuse's own errors, and no one else's."""
    return isinstance(error, FlexDiffuseError) or getattr(error, _JOB_ERROR, False)
