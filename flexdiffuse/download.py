"""Downloading a tower's weights from Hugging Face where the caller can follow and stop it.

``transformers``' ``from_pretrained`` downloads through ``huggingface_hub``, whose progress goes
to a console bar only and which cannot be stopped. So before ``from_pretrained`` runs,
:func:`fetch_weights` downloads the weights file alone with ``hf_hub_download`` into the same
cache (``from_pretrained`` then finds it there). While it runs, the progress bars
``huggingface_hub`` opens in this thread are made of a subclass of its own bar class that also
reports the bytes to the caller's :class:`DownloadHooks` and raises :class:`DownloadStoppedError`
between two chunks when the caller asks to stop. Bars of other threads behave as before, and
the console bar is kept.

A stopped download leaves nothing a later load trusts: ``huggingface_hub`` writes into
``<blob>.incomplete`` and renames the file only once it is complete (and resumes the
``.incomplete`` file on the next try). Nothing here imports a webui.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"

# The modules whose global ``tqdm`` makes download bars: huggingface_hub 0.2x makes them in
# file_download.http_get, later versions in utils.tqdm._get_progress_bar_context.
_BAR_MODULES = ("huggingface_hub.file_download", "huggingface_hub.utils.tqdm")


def _ignore(done: int, total: int | None) -> None:
    del done, total


def _never() -> bool:
    return False


@dataclass(frozen=True)
class DownloadHooks:
    """What a caller learns of a download, and how it stops one.

    ``on_bytes(done, total)`` follows the weights file (``total`` None when the server does not
    say); ``should_stop()`` is asked after every chunk and between files.
    """

    on_bytes: Callable[[int, int | None], None] = field(default=_ignore)
    should_stop: Callable[[], bool] = field(default=_never)


class DownloadStoppedError(Exception):
    """The caller asked to stop; the partial file stays as ``.incomplete`` and is resumed."""


class DiskFullError(OSError):
    """The download did not fit on the disk (the message names the folder)."""


def fetch_weights(
    repo: str, subfolder: str, cache_dir: str | Path | None, hooks: DownloadHooks
) -> None:
    """Download ``model.safetensors`` of ``repo`` (in ``subfolder``) into ``cache_dir``.

    Only the weights file is fetched here, with progress and stops; the small files and any
    error (offline, no such repo, no safetensors file) are left to ``from_pretrained``, which
    looks again and says what is wrong.

    Raises:
        DownloadStoppedError: ``hooks.should_stop()`` said so, before, during or after the download.
        DiskFullError: the disk holding ``cache_dir`` ran out of space.
    """
    if hooks.should_stop():
        raise DownloadStoppedError
    from huggingface_hub import hf_hub_download

    try:
        with _reporting_bars(hooks):
            hf_hub_download(
                repo, WEIGHTS_FILE, subfolder=subfolder or None, cache_dir=_str(cache_dir)
            )
    except DownloadStoppedError:
        raise
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFullError(errno.ENOSPC, _disk_full_message(cache_dir)) from error
        logger.debug("Could not fetch %s of %s first: %s", WEIGHTS_FILE, repo, error)
    except Exception as error:  # from_pretrained tries again and reports what is wrong
        logger.debug("Could not fetch %s of %s first: %s", WEIGHTS_FILE, repo, error)
    if hooks.should_stop():
        raise DownloadStoppedError


def is_cached(repo: str, subfolder: str, cache_dir: str | Path | None) -> bool:
    """Whether the weights of ``repo`` (in ``subfolder``) were downloaded into ``cache_dir``."""
    from huggingface_hub import try_to_load_from_cache

    filename = f"{subfolder}/{WEIGHTS_FILE}" if subfolder else WEIGHTS_FILE
    try:
        found = try_to_load_from_cache(repo, filename, cache_dir=_str(cache_dir))
    except Exception as error:  # a malformed repo id, an unreadable cache
        logger.debug("Cannot look for %s in the cache: %s", repo, error)
        return False
    return isinstance(found, str) and os.path.isfile(found)


def _str(path: str | Path | None) -> str | None:
    return str(path) if path is not None else None


def _disk_full_message(cache_dir: str | Path | None) -> str:
    where = f"'{cache_dir}'" if cache_dir else "the Hugging Face cache"
    return (
        f"The disk holding {where} is full. Free some space there (the partial download "
        "is kept as a .incomplete file and resumes), or download the tower elsewhere and set "
        "its setting to that file or folder."
    )


# ----------------------------------------------------------------- progress bars

_lock = threading.Lock()
_watched: dict[int, DownloadHooks] = {}  # thread id -> hooks of the download it runs
_originals: dict[str, type] = {}  # module name -> its bar class, while bars are replaced


@contextlib.contextmanager
def _reporting_bars(hooks: DownloadHooks) -> Iterator[None]:
    """Report and stop the download bars this thread opens while inside."""
    thread = threading.get_ident()
    with _lock:
        if not _watched:
            _replace_bar_classes()
        _watched[thread] = hooks
    try:
        yield
    finally:
        with _lock:
            _watched.pop(thread, None)
            if not _watched:
                _restore_bar_classes()


def _replace_bar_classes() -> None:
    for name in _BAR_MODULES:
        module = sys.modules.get(name)
        original = getattr(module, "tqdm", None)
        if isinstance(original, type) and not getattr(original, "_flexdiffuse", False):
            _originals[name] = original
            module.tqdm = _reporting_class(original)  # type: ignore[union-attr]
    if not _originals:
        logger.debug("huggingface_hub makes no bar FlexDiffuse knows: no download progress")


def _restore_bar_classes() -> None:
    for name, original in _originals.items():
        module = sys.modules.get(name)
        if module is not None:
            module.tqdm = original  # type: ignore[attr-defined]
    _originals.clear()


def _reporting_class(base: type) -> type:
    """``base`` (a tqdm class) whose byte bars also feed the hooks of the thread opening them."""

    class ReportingBar(base):  # type: ignore[misc, valid-type]
        _flexdiffuse = True

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # A disabled tqdm counts nothing, so the bytes are counted here.
            self._flex_hooks = _watched.get(threading.get_ident())
            self._flex_thread = threading.get_ident()
            self._flex_done = int(kwargs.get("initial") or 0)
            total = kwargs.get("total")
            self._flex_total = int(total) if total else None
            if kwargs.get("unit") != "B":  # a bar of files, not of bytes
                self._flex_hooks = None
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            hooks = self._flex_hooks
            if hooks is not None:
                self._flex_done += int(n or 0)
                hooks.on_bytes(self._flex_done, self._flex_total)
                # Raise only in the downloading thread: a download library's own threads
                # (hf_xet, hf_transfer) must not be broken; fetch_weights stops after them.
                if threading.get_ident() == self._flex_thread and hooks.should_stop():
                    raise DownloadStoppedError
            return shown

    ReportingBar.__name__ = ReportingBar.__qualname__ = base.__name__
    return ReportingBar
