"""Guidance images as FlexDiffuse keeps them: a digest and no more pixels than a tower needs.

A guidance image can be far larger than the 224-pixel square a CLIP vision tower sees. Once
it is decoded, it is hashed once (the hash goes into infotext and keys the encoding caches)
and reduced to its upright centre square of at most :data:`KEEP_SIDE` pixels, so a huge upload
costs its decode once and stays small for the rest of the job.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image, ImageOps

from .encoder import image_digest, to_rgb

KEEP_SIDE = 1024
"""Side of the square kept of each guidance image: above every tower's input size (224-448)."""


@dataclass(frozen=True, eq=False)
class GuidanceImage:
    """A decoded guidance image: its :func:`~flexdiffuse.encoder.image_digest` and the
    upright RGB centre square (at most :data:`KEEP_SIDE` pixels) that towers and previews use."""

    pixels: Image.Image
    digest: str

    @classmethod
    def from_pil(cls, image: Image.Image) -> GuidanceImage:
        """Hash ``image`` and keep its reduced centre square (``image`` itself is not kept)."""
        digest = image_digest(image)
        return cls(centre_square(image, KEEP_SIDE), digest)


def centre_square(image: Image.Image, max_side: int) -> Image.Image:
    """The upright RGB centre square of ``image``, reduced to at most ``max_side`` pixels."""
    upright = ImageOps.exif_transpose(image)
    side = min(upright.size)
    left, top = (upright.width - side) // 2, (upright.height - side) // 2
    box = (left, top, left + side, top + side)
    factor = side // max_side
    if factor >= 2 and upright.mode in ("L", "LA", "RGB", "RGBA", "RGBa", "La", "I", "F"):
        # Box-reduce while cropping: no full-size copy, and the final resize stays sharp.
        square = upright.reduce(factor, box)
    else:
        square = upright.crop(box)
    if square.width > max_side:
        square = square.resize((max_side, max_side), Image.Resampling.BICUBIC)
    return to_rgb(square)
