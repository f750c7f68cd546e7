"""Guidance images as FlexDiffuse keeps them: pixels, a digest and the square a tower sees.

A guidance image can be far larger than the 224-pixel square a CLIP vision tower sees. Once
it is decoded, it is hashed once (the hash goes into infotext and keys the encoding caches)
and reduced to its upright centre square of at most :data:`KEEP_SIDE` pixels, so a huge upload
costs its decode once and stays small for the rest of the job. The same centre square, resized
to the tower's input, is what the tower encodes (:func:`prepare_image`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

KEEP_SIDE = 1024
"""Side of the square kept of each guidance image: above every tower's input size (224-448)."""


@dataclass(frozen=True, eq=False)
class GuidanceImage:
    """A decoded guidance image: its :func:`image_digest` and the upright RGB centre square
    (at most :data:`KEEP_SIDE` pixels) that towers and previews use."""

    pixels: Image.Image
    digest: str

    @classmethod
    def from_pil(cls, image: Image.Image) -> GuidanceImage:
        """Hash ``image`` and keep its reduced centre square (``image`` itself is not kept)."""
        digest = image_digest(image)
        return cls(centre_square(image, KEEP_SIDE), digest)


def centre_square(image: Image.Image, max_side: int | None = None) -> Image.Image:
    """The upright RGB centre square of ``image``, reduced to at most ``max_side`` pixels."""
    upright = ImageOps.exif_transpose(image)
    side = min(upright.size)
    left, top = (upright.width - side) // 2, (upright.height - side) // 2
    box = (left, top, left + side, top + side)
    factor = side // max_side if max_side else 1
    if factor >= 2 and upright.mode in ("L", "LA", "RGB", "RGBA", "RGBa", "La", "I", "F"):
        # Box-reduce while cropping: no full-size copy, and the final resize stays sharp.
        square = upright.reduce(factor, box)
    else:
        square = upright.crop(box)
    if max_side and square.width > max_side:
        square = square.resize((max_side, max_side), Image.Resampling.BICUBIC)
    return to_rgb(square)


def prepare_image(image: Image.Image, size: int) -> Image.Image:
    """What a tower of ``size``-pixel input sees: the centre square, bicubic-resized."""
    check_image(image)
    # PIL's resize filters over the whole source footprint, so downscaling is antialiased.
    return centre_square(image).resize((size, size), Image.Resampling.BICUBIC)


def image_digest(image: Image.Image) -> str:
    """A hex digest of what the encoder sees of ``image``: its pixels, mode and orientation.

    Equal for copies of one picture, different for any change of pixels, size, mode or EXIF
    orientation. Hosts show its first characters as the image's hash. Pixels are read in
    strips, so a huge image costs no second full-size copy.
    """
    check_image(image)
    digest = hashlib.blake2b(digest_size=16)
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    digest.update(f"{image.mode} {image.width}x{image.height} {orientation} ".encode())
    rows = max(1, _DIGEST_STRIP_BYTES // max(1, image.width * len(image.getbands()) * 4))
    for top in range(0, image.height, rows):
        digest.update(image.crop((0, top, image.width, min(image.height, top + rows))).tobytes())
    return digest.hexdigest()


_EXIF_ORIENTATION = 0x0112
_DIGEST_STRIP_BYTES = 8 << 20


def check_image(image: object) -> None:
    """Raise ValueError unless ``image`` is a PIL image with pixels."""
    if not isinstance(image, Image.Image):
        raise ValueError(f"The guidance image must be a PIL image, got {type(image).__name__}.")
    if image.width < 1 or image.height < 1:
        raise ValueError(f"The guidance image is empty ({image.width}x{image.height}).")


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; transparency is composited on white, high bit depths are rescaled."""
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        image = _high_depth_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "RGBa", "La", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _high_depth_to_l(image: Image.Image) -> Image.Image:
    """8-bit greyscale from a 16-bit, 32-bit or float image, scaled by its format's range.

    Scaling by the image's own maximum would brighten a dark picture: the same photo must
    guide alike at 8 and 16 bits.
    """
    values = np.asarray(image, dtype=np.float64)
    top = _sample_range(image.mode, float(values.max(initial=0)))
    scaled = np.clip(values, 0, top) * (255.0 / top)
    return Image.fromarray(scaled.round().astype(np.uint8), mode="L")


def _sample_range(mode: str, largest: float) -> float:
    """The value that means white in a high-depth mode, as far as the mode can tell.

    ``I;16*`` holds 16-bit samples. Pillow opens 16-bit greyscale PNG, TIFF and PGM files as
    ``I`` (older Pillow, as A1111 ships) or ``I;16``, so ``I`` is read as 16-bit too, unless a
    value exceeds 65535 (true 32-bit data, read as 32-bit signed). ``F`` has no declared range:
    values up to 1 are read as 0..1 (normalised floats), up to 255 as 0..255 (Pillow's own
    ``convert("F")`` of an 8-bit image), beyond that as 0..65535.
    """
    if mode.startswith("I;16"):
        return 65535.0
    if mode == "I":
        return 65535.0 if largest <= 65535 else float(2**31 - 1)
    if largest <= 1.0:
        return 1.0
    return 255.0 if largest <= 255 else 65535.0
