"""The CLIP vision towers a webui session uses: loaded on first need, encodings kept.

Towers are kept by :func:`~flexdiffuse.towers.source_key`, so every spelling of one file or
folder (``./x``, ``x/``, a symlink) loads one copy. Encodings are kept per tower, device and
dtype even when the tower itself is unloaded, so generating again with the same image loads
nothing. A tower's weights are loaded only here, by the loader, when a job or preview has an
image new to that tower, from the source the settings resolved
(:func:`~.settings.source_to_load`); a pickle only as
:func:`~flexdiffuse.checkpoints.read_weights` allows. Nothing here imports A1111: the host
passes the device, dtype and download folder, and how to show progress and tell a stop request
(:class:`TowerProgress`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..download import DownloadHooks, never
from ..encoder import ImageEncoder, TokenCache
from ..images import GuidanceImage
from ..towers import source_key

logger = logging.getLogger(__name__)

Loader = Callable[..., ImageEncoder]
"""Loads a tower: ``loader(source, device, dtype, cache_dir=..., download=DownloadHooks)``."""

GB = 1e9


@dataclass(frozen=True)
class TowerPlacement:
    """Where and how a tower runs, and where its weights are downloaded."""

    device: torch.device
    dtype: torch.dtype
    download_dir: Path | None = None
    keep_loaded: bool = True
    park: torch.device | None = None
    """Where a kept tower waits between encodings (None: on ``device``): a host whose
    memory manager owns ``device`` counts a tower left there as free memory. Either way at
    most one tower is on an accelerator at a time: the others wait on the CPU."""
    make_room: Callable[[int], None] | None = None
    """Asks the host for this many bytes on ``device`` before a tower moves there."""


def _quiet(text: str | None) -> None:
    del text


@dataclass(frozen=True)
class TowerProgress:
    """How tower work shows in the web page, and how the user stops it.

    ``say`` sets the job's progress text (None clears it); ``stop_requested`` tells whether
    the user pressed Interrupt or Skip, asked between files and download chunks.
    """

    say: Callable[[str | None], None] = field(default=_quiet)
    stop_requested: Callable[[], bool] = field(default=never)


class VisionTowers:
    """Loads towers by source (Hugging Face id, folder or file) and encodes images with them."""

    def __init__(self, loader: Loader = ImageEncoder.from_pretrained) -> None:
        self._loader = loader
        self._encoders: dict[str, ImageEncoder] = {}  # source_key -> encoder
        self._caches: dict[tuple[str, str, torch.dtype], TokenCache] = {}

    def encode(
        self,
        source: str,
        images: list[GuidanceImage],
        placement: TowerPlacement,
        label: str | None = None,
        progress: TowerProgress | None = None,
    ) -> list[torch.Tensor]:
        """The image tokens of each of ``images`` from the tower at ``source``.

        The tower is loaded only if an image is new to it. With ``placement.keep_loaded`` off
        it is unloaded right after, so at most one tower is in memory at a time. ``label``
        names the tower in the progress text.

        Raises:
            ModelLoadError: the tower cannot be loaded (the message says what to do).
            LoadStoppedError: the user asked to stop while it downloaded or before it loaded.
        """
        progress = progress or TowerProgress()
        key = source_key(source)
        device = torch.device(placement.device)
        cache = self._caches.setdefault((key, device.type, placement.dtype), TokenCache())
        encoded = [cache.get(image.digest) for image in images]
        new = sum(tokens is None for tokens in encoded)
        if new:
            encoder = self._encoder(key, source, placement, cache, label or source, progress)
            images_text = f"{new} guidance image{'s' if new > 1 else ''}"
            progress.say(f"FlexDiffuse: encoding {images_text} with {label or source}")
            encoded = [encoder(image.pixels, image.digest) for image in images]
        if not placement.keep_loaded:
            self.unload(key)
        elif placement.park is not None and key in self._encoders:
            encoder = self._encoders[key]
            if encoder.device != torch.device(placement.park):
                encoder.to(placement.park)
        return encoded

    def loaded(self) -> list[str]:
        """Keys (:func:`~flexdiffuse.towers.source_key`) of the towers in memory now."""
        return list(self._encoders)

    def unload(self, source: str | None = None) -> None:
        """Drop one tower (any spelling of its source) or all of them; encodings are kept."""
        for key in [source_key(source)] if source is not None else list(self._encoders):
            if self._encoders.pop(key, None) is not None:
                logger.info("Unloaded CLIP vision model %s", key)

    def retain(self, sources: Iterable[str]) -> list[str]:
        """Unload every tower that none of ``sources`` names; returns the keys unloaded."""
        kept = {source_key(source) for source in sources}
        dropped = [key for key in self._encoders if key not in kept]
        for key in dropped:
            self.unload(key)
        return dropped

    def _encoder(
        self,
        key: str,
        source: str,
        placement: TowerPlacement,
        cache: TokenCache,
        label: str,
        progress: TowerProgress,
    ) -> ImageEncoder:
        encoder = self._encoders.get(key)
        self._make_way(key, torch.device(placement.device))
        if encoder is None:
            logger.info("Loading CLIP vision model %s", source)
            progress.say(f"FlexDiffuse: loading {label}")

            def downloaded(done: int, total: int | None) -> None:
                if total and done >= total:
                    progress.say(f"FlexDiffuse: loading {label}")
                    return
                of = f" of {total / GB:.1f}" if total else ""
                progress.say(f"FlexDiffuse: downloading {label}, {done / GB:.1f}{of} GB")

            hooks = DownloadHooks(downloaded, progress.stop_requested)
            encoder = self._loader(
                source,
                placement.park or placement.device,  # the host makes room before it moves
                placement.dtype,
                cache_dir=placement.download_dir,
                download=hooks,
            )
            self._encoders[key] = encoder
        if not _same_device(encoder.device, placement.device) or encoder.dtype != placement.dtype:
            if placement.make_room is not None:
                size = sum(weight.numel() for weight in encoder.model.parameters())
                placement.make_room(size * placement.dtype.itemsize)
            encoder.to(placement.device, placement.dtype)
        encoder.cache = cache  # encodings are kept per device and dtype
        return encoder

    def _make_way(self, key: str, device: torch.device) -> None:
        """Move every tower but ``key`` off the accelerator ``device`` is on.

        SDXL needs two towers: the second waits until the first has left, so a job never
        holds more than one tower's weights in GPU memory.
        """
        if device.type == "cpu":
            return
        for other_key, other in self._encoders.items():
            if other_key != key and _same_device(other.device, device):
                logger.info("Moving CLIP vision model %s to the CPU", other_key)
                other.to(torch.device("cpu"))


def _same_device(actual: torch.device, wanted: torch.device | str) -> bool:
    """Whether a tower on ``actual`` is on ``wanted``; ``cuda`` means the current GPU."""
    wanted = torch.device(wanted)
    if actual.type != wanted.type:
        return False
    return actual.index is None or wanted.index is None or actual.index == wanted.index
