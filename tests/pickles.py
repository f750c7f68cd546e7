"""A pickle that runs code when unpickled, a torch whose ``weights_only`` does not stop it, and
a record of the files a process opens: what the tests of "no pickle is opened on its own" use.

:func:`plant` writes a real zip-format torch file, as ``torch.save`` writes it, holding a whole
tiny tower's tensors and an object whose ``__reduce__`` creates a marker file: unpickling it
runs ``Path.touch``. The torch installed here refuses it under ``weights_only`` (an
unsupported global, not a malformed file); torch 2.9.1 and earlier have published bypasses
of that check, which :func:`bypassed_weights_only` stands for: every read through torch's
loader then runs the file's code, as an attacker's file would there. A test that finds the
marker has caught a read of the pickle.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from flexdiffuse.checkpoints import PICKLE_SUFFIXES

_TORCH_LOAD = torch.serialization.load  # torch's own, whatever a test patches later


class Touch:
    """Unpickled, creates ``marker``: the payload's stand-in for any code."""

    def __init__(self, marker: Path) -> None:
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def plant(path: Path, marker: Path, state: dict[str, torch.Tensor] | None = None) -> Path:
    """A torch file at ``path`` whose unpickling creates ``marker`` (``state`` inside too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({**(state or {"visual.proj": torch.zeros(2, 2)}), "payload": Touch(marker)}, path)
    return path


def plant_everywhere(folder: Path, marker: Path) -> list[Path]:
    """Code-running pickles as a scan meets them in ``folder``: one per pickle suffix, one in
    a subfolder, and a folder saved by transformers with pickled weights only."""
    planted = [plant(folder / f"clip_h{suffix}", marker) for suffix in PICKLE_SUFFIXES]
    planted.append(plant(folder / "ip-adapter" / "clip_g.pth", marker))
    encoder = folder / "image_encoder"
    planted.append(plant(encoder / "pytorch_model.bin", marker))
    (encoder / "config.json").write_text('{"model_type": "clip_vision_model"}')
    return planted


def bypass_weights_only(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, torch's loader as on a torch whose ``weights_only`` check is bypassed: a
    pickle's code runs. Returns the list of files read through it (filled as they are)."""
    reads: list[str] = []

    def bypassed(file, *args, **kwargs):
        reads.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        kwargs["weights_only"] = False
        return _TORCH_LOAD(file, *args, **kwargs)

    monkeypatch.setattr(torch.serialization, "load", bypassed)
    monkeypatch.setattr(torch, "load", bypassed)
    return reads


_RECORDS: list[list[str]] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _RECORDS and isinstance(args[0], (str, bytes, os.PathLike)):
        for record in _RECORDS:
            record.append(os.fsdecode(args[0]))


sys.addaudithook(_record_opens)  # cannot be removed: it records only inside opened_files()


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """The files Python opens meanwhile (``open``, ``os.open``: every Python-level reader of a
    pickle, torch's loader included; safetensors opens in Rust and is not seen)."""
    record: list[str] = []
    _RECORDS.append(record)
    try:
        yield record
    finally:
        _RECORDS.remove(record)


def pickles_in(paths: list[str]) -> list[str]:
    """The pickles among ``paths``."""
    return [path for path in paths if Path(path).suffix.lower() in PICKLE_SUFFIXES]
