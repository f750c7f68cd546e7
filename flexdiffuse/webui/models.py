"""The CLIP vision towers a webui session uses: loaded on first need, encodings kept.

Encodings are kept per tower, device and dtype even when the tower itself is unloaded, so
generating again with the same image loads nothing. Nothing here imports A1111: the host
passes the device, dtype and download folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..encoder import ImageEncoder, TokenCache
from ..images import GuidanceImage

logger = logging.getLogger(__name__)

Loader = Callable[..., ImageEncoder]


@dataclass(frozen=True)
class TowerPlacement:
    """Where and how a tower runs, and where its weights are downloaded."""

    device: torch.device
    dtype: torch.dtype
    download_dir: Path | None = None
    keep_loaded: bool = True


class VisionTowers:
    """Loads towers by source (Hugging Face id, folder or file) and encodes images with them."""

    def __init__(self, loader: Loader = ImageEncoder.from_pretrained) -> None:
        self._loader = loader
        self._encoders: dict[str, ImageEncoder] = {}
        self._caches: dict[tuple[str, str, torch.dtype], TokenCache] = {}

    def encode(
        self, source: str, images: list[GuidanceImage], placement: TowerPlacement
    ) -> list[torch.Tensor]:
        """The image tokens of each of ``images`` from the tower at ``source``.

        The tower is loaded only if an image is new to it. With ``placement.keep_loaded`` off
        it is unloaded right after, so at most one tower is in memory at a time.

        Raises:
            ModelLoadError: the tower cannot be loaded (the message says what to do).
        """
        device = torch.device(placement.device)
        cache = self._caches.setdefault((source, device.type, placement.dtype), TokenCache())
        encoded = [cache.get(image.digest) for image in images]
        if any(tokens is None for tokens in encoded):
            encoder = self._encoder(source, placement, cache)
            encoded = [encoder(image.pixels, image.digest) for image in images]
        if not placement.keep_loaded:
            self.unload(source)
        return encoded

    def loaded(self) -> list[str]:
        """Sources of the towers in memory now."""
        return list(self._encoders)

    def unload(self, source: str | None = None) -> None:
        """Drop one tower (or all of them); their encodings are kept."""
        for name in [source] if source is not None else list(self._encoders):
            if self._encoders.pop(name, None) is not None:
                logger.info("Unloaded CLIP vision model %s", name)

    def _encoder(self, source: str, placement: TowerPlacement, cache: TokenCache) -> ImageEncoder:
        encoder = self._encoders.get(source)
        if encoder is None:
            logger.info("Loading CLIP vision model %s", source)
            encoder = self._loader(
                source, placement.device, placement.dtype, cache_dir=placement.download_dir
            )
            self._encoders[source] = encoder
        if encoder.device != torch.device(placement.device) or encoder.dtype != placement.dtype:
            encoder.to(placement.device, placement.dtype)
        encoder.cache = cache  # encodings are kept per device and dtype
        return encoder
