"""docs/algorithm.md §18: a reference mask, the part of a guidance image that may be taken.

A vision tower sees the centre square of an image as a grid of patches, and gives one token
for the whole picture (the class token) and one per patch. A mask over the image keeps the
tokens of the patches it covers; the others are never candidates, so no prompt token can move
toward them.
"""

from __future__ import annotations

import math

import torch

MIN_COVER = 0.5
"""The share of a patch the mask must cover for the patch to be kept (at least half)."""


class MaskError(ValueError):
    """A reference mask that cannot be used; the message says what to change."""


def token_keep(mask: torch.Tensor, image_size: tuple[int, int], tokens: int) -> torch.Tensor:
    """Which of an image's ``tokens`` image tokens the reference ``mask`` keeps, ``[tokens]``.

    ``mask`` is ``[H, W]`` in 0..1 (1: may be taken) over the upright image of ``image_size``
    (width, height); a mask of the same shape but another size is resized to it. The tower's
    view is the centre square; a patch is kept when the mask covers at least
    :data:`MIN_COVER` of it (the mean of the mask over the patch's pixels). The class token,
    which describes the whole picture, is kept only when every patch is, so a mask of the
    whole image keeps everything and guides exactly as no mask.

    Raises:
        MaskError: a mask that is not a 2-D finite 0..1 map, whose shape is not the image's,
            or that leaves no patch.
    """
    grid = patch_grid(tokens)
    square = _centre_square(_fit(_checked(mask), image_size))
    cover = torch.nn.functional.interpolate(square[None, None], size=(grid, grid), mode="area")
    patches = cover.flatten() >= MIN_COVER
    if not patches.any():
        raise MaskError(
            "The reference mask leaves no patch of the image the vision model sees (its centre "
            f"square): a patch is kept when the mask covers at least {MIN_COVER:.0%} of it. "
            "Paint over the part of the image to take, or remove the mask."
        )
    return torch.cat([patches.all().reshape(1), patches])


def patch_grid(tokens: int) -> int:
    """The side of the patch grid of an image encoded as ``tokens`` tokens (class + grid²)."""
    grid = math.isqrt(max(tokens - 1, 0))
    if grid < 1 or grid * grid != tokens - 1:
        raise MaskError(
            f"An image encoded as {tokens} tokens has no square patch grid (a class token and "
            "grid x grid patches), so a reference mask cannot be placed on it."
        )
    return grid


def _checked(mask: torch.Tensor) -> torch.Tensor:
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or 0 in mask.shape:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise MaskError(f"A reference mask must be a 2-D map [height, width]; got {shape}.")
    values = mask.detach().float().cpu()
    if not bool(torch.isfinite(values).all()) or values.min() < 0 or values.max() > 1:
        raise MaskError("A reference mask's values must be between 0 and 1 (1: may be taken).")
    return values


def _fit(mask: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``mask`` at the image's size: as it is, or resized when only its scale differs."""
    width, height = image_size
    mask_height, mask_width = mask.shape
    if (mask_width, mask_height) == (width, height):
        return mask
    # The same shape at another scale (a mask painted on a preview, say): within one pixel.
    if abs(mask_width * height / mask_height - width) > 1:
        raise MaskError(
            f"The reference mask is {mask_width}x{mask_height} but its image is "
            f"{width}x{height}: paint the mask on the image itself, or give a mask of the "
            "image's size (or of its shape, at any scale)."
        )
    return torch.nn.functional.interpolate(mask[None, None], size=(height, width), mode="area")[
        0, 0
    ]


def _centre_square(mask: torch.Tensor) -> torch.Tensor:
    """The centre square of ``mask``, as :func:`flexdiffuse.images.centre_square` crops."""
    height, width = mask.shape
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return mask[top : top + side, left : left + side]
