"""Error texts joined into FlexDiffuse's messages read as one sentence each."""

from __future__ import annotations

import pytest

from flexdiffuse.messages import as_sentence


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("file is truncated", "file is truncated."),
        ("file is truncated.", "file is truncated."),
        ("  truncated...  ", "truncated."),
        ("is it a PNG?", "is it a PNG?"),
        (OSError("cannot identify image file"), "cannot identify image file."),
        (ValueError(), "ValueError."),
        ("", ""),
    ],
)
def test_a_clause_ends_in_one_stop(text, sentence):
    assert as_sentence(text) == sentence
