"""Downloading a tower's weights from Hugging Face where the caller can follow and stop it.

``transformers``' ``from_pretrained`` downloads through ``huggingface_hub``, whose progress goes
to a console bar only. So before ``from_pretrained`` runs, :func:`fetch_weights` downloads the
weights file alone with ``hf_hub_download`` into the same cache (``from_pretrained`` then finds
it there), through what the hub offers publicly:

- ``huggingface_hub`` 1.0 and later take a ``tqdm_class``: its bars report each chunk to the
  caller's :class:`DownloadHooks` and raise :class:`DownloadStoppedError` between two chunks
  when the caller asks to stop.
- Earlier versions (those the webuis ship) take no bar class and offer no way to stop a file
  midway. The bytes are followed on disk instead: the hub writes a file into
  ``<cache>/models--<owner>--<name>/blobs/<etag>.incomplete`` and renames it once complete
  (the folders are its documented cache layout; the suffix is how the 0.x releases name a
  file in progress, and tests/test_download.py fails loudly if that changes), so a watcher
  thread reports that file's size. A stop asked meanwhile takes effect once the file is
  complete.

Nothing of the hub is replaced, so downloads of other threads and libraries are untouched. A
stopped or broken download leaves nothing a later load trusts: the hub renames the
``.incomplete`` file only once it is complete. The 0.x releases keep it and resume it on the
next try; 1.x deletes it when a download is stopped (checked with huggingface_hub 1.33), so the
next try starts again. Nothing here imports a webui.
"""

from __future__ import annotations

import contextlib
import errno
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
PARTIAL_SUFFIX = ".incomplete"
WATCH_SECONDS = 0.25
"""How often the size of a partial download is read, where the hub takes no bar class."""


def _ignore(done: int, total: int | None) -> None:
    del done, total


def never() -> bool:
    """A stop request that never comes."""
    return False


@dataclass(frozen=True)
class DownloadHooks:
    """What a caller learns of a download, and how it stops one.

    ``on_bytes(done, total)`` follows the weights file (``total`` None when the server does not
    say); ``should_stop()`` is asked after every chunk (before and after the file where the
    hub takes no bar class).
    """

    on_bytes: Callable[[int, int | None], None] = field(default=_ignore)
    should_stop: Callable[[], bool] = field(default=never)


class DownloadStoppedError(Exception):
    """The caller asked to stop; nothing half-downloaded is left where a load would find it."""


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

    subfolder_arg = subfolder or None
    try:
        if takes_bar_class(hf_hub_download):
            hf_hub_download(
                repo,
                WEIGHTS_FILE,
                subfolder=subfolder_arg,
                cache_dir=_str(cache_dir),
                tqdm_class=_reporting_bar_class(hooks),
            )
        else:
            with _watching_partial_file(repo, subfolder, cache_dir, hooks):
                path = hf_hub_download(
                    repo, WEIGHTS_FILE, subfolder=subfolder_arg, cache_dir=_str(cache_dir)
                )
            size = os.path.getsize(path)
            hooks.on_bytes(size, size)
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


# ----------------------------------------------------------------- progress


def takes_bar_class(download: Callable[..., Any]) -> bool:
    """Whether ``download`` (``hf_hub_download``) takes a ``tqdm_class`` (huggingface_hub 1.0+)."""
    try:
        return "tqdm_class" in inspect.signature(download).parameters
    except (TypeError, ValueError):  # a callable without a signature
        return False


def _reporting_bar_class(hooks: DownloadHooks) -> type:
    """The hub's own bar class, whose byte bars also report to ``hooks`` and stop on request.

    The hub passes it to the bars of this download only, so nothing else is reported.
    """
    from huggingface_hub.utils import tqdm as hub_bar

    thread = threading.get_ident()

    class ReportingBar(hub_bar):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            # A disabled tqdm counts nothing, so the bytes are counted here.
            self._flex_done = int(kwargs.get("initial") or 0)
            total = kwargs.get("total")
            self._flex_total = int(total) if total else None
            self._flex_bytes = kwargs.get("unit", "it") == "B"  # not a bar of files
            super().__init__(*args, **kwargs)

        def update(self, n: float | None = 1) -> bool | None:
            shown = super().update(n)
            if self._flex_bytes:
                self._flex_done += int(n or 0)
                hooks.on_bytes(self._flex_done, self._flex_total)
                # Raise only in the downloading thread: a download library's own threads
                # (hf_xet) must not be broken; fetch_weights stops after them.
                if threading.get_ident() == thread and hooks.should_stop():
                    raise DownloadStoppedError
            return shown

    return ReportingBar


@contextlib.contextmanager
def _watching_partial_file(
    repo: str, subfolder: str, cache_dir: str | Path | None, hooks: DownloadHooks
) -> Iterator[None]:
    """Report the growing ``.incomplete`` file of ``repo``'s cache while inside."""
    from huggingface_hub import constants

    repo_folder = Path(cache_dir or constants.HF_HUB_CACHE) / f"models--{repo.replace('/', '--')}"
    done = threading.Event()
    watcher = threading.Thread(
        target=_watch,
        args=(repo_folder / "blobs", lambda: _remote_size(repo, subfolder), hooks, done),
        name="flexdiffuse-download-progress",
        daemon=True,
    )
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def _watch(
    blobs: Path, remote_size: Callable[[], int | None], hooks: DownloadHooks, done: threading.Event
) -> None:
    total = remote_size()
    reported = -1
    while not done.wait(WATCH_SECONDS):
        size = _partial_bytes(blobs)
        if size is not None and size != reported:
            reported = size
            hooks.on_bytes(size, total)


def _partial_bytes(blobs: Path) -> int | None:
    """The size of the download in progress in ``blobs`` (None before it starts)."""
    try:
        sizes = [entry.stat().st_size for entry in blobs.glob(f"*{PARTIAL_SUFFIX}")]
    except OSError:  # renamed or removed while read: the download just ended
        return None
    return max(sizes) if sizes else None


def _remote_size(repo: str, subfolder: str) -> int | None:
    """The size of the weights file on the hub, or None if it does not say."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(repo, WEIGHTS_FILE, subfolder=subfolder or None)
    try:
        return get_hf_file_metadata(url).size
    except Exception as error:  # the download itself reports what is wrong
        logger.debug("No size for %s: %s", url, error)
        return None
