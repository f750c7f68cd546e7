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
