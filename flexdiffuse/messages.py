"""How FlexDiffuse words its messages, for the core and the webui glue alike."""

from __future__ import annotations


def as_sentence(text: object) -> str:
    """``text`` ending in exactly one full stop (or its own ! or ?), to join into a message.

    An error without a message reads as its type's name.
    """
    words = str(text).strip().rstrip(".")
    if not words and isinstance(text, BaseException):
        words = type(text).__name__
    return f"{words}." if words and words[-1] not in "!?" else words
