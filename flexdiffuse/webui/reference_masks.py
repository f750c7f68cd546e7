"""Reference masks as the panel and the API send them (docs/algorithm.md §18).

Each guidance image may have a mask (argument ``image_mask``, ``image_2_mask``...): only the
patches of the image it covers can be taken. It comes in one of three forms:

- painted in the panel, on a copy of the image in the host's own image editor (gradio 3's
  sketch tool sends ``{"image": ..., "mask": ...}``, white where painted; gradio 4's
  ``ImageEditor`` ``{"background": ..., "layers": [...], "composite": ...}``, the layers
  opaque where painted). Nothing painted is no mask; the painted mask is scaled to the image
  it was painted on;
- an uploaded mask image (the API: a base64 string, like the images): white may be taken,
  black may not; in a mask with transparency the opaque part may be taken (a painted layer
  saved as a file). It must have the image's size or shape; a mask that leaves no patch is
  refused, never ignored.

Whether a patch is kept is the core's rule (:func:`flexdiffuse.masks.token_keep`); its
refusals reach the user as the job's error, naming the image.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..images import image_digest, to_rgb
from ..masks import MaskError, token_keep
from .errors import FlexDiffuseError

MASK_SUFFIX = "_mask"


def mask_input(name: str) -> str:
    """The mask argument of guidance image input ``name`` ("image_2" -> "image_2_mask")."""
    return f"{name}{MASK_SUFFIX}"


@dataclass(frozen=True, eq=False)
class GuidanceMask:
    """A guidance image's mask: 255 where its image may be taken (mode ``L``), the upright
    size of that image, and the mask's digest (recorded in infotext beside the image's)."""

    values: Image.Image
    image_size: tuple[int, int]
    digest: str

    def keep(self, tokens: int) -> torch.Tensor:
        """Which of the image's ``tokens`` image tokens the mask keeps (the core's rule).

        Raises:
            MaskError: a mask of another shape than its image, or one that keeps no patch.
        """
        values = torch.from_numpy(np.asarray(self.values, dtype=np.float32) / 255.0)
        return token_keep(values, self.image_size, tokens)


def upright_size(image: Image.Image) -> tuple[int, int]:
    """The size of ``image`` as shown: width and height swap for EXIF orientations 5-8."""
    orientation = image.getexif().get(0x0112, 1)
    return (image.height, image.width) if orientation in (5, 6, 7, 8) else image.size


def read_mask(
    value: Any,
    label: str,
    image_size: tuple[int, int] | None,
    decode: Any,
) -> GuidanceMask | None:
    """The mask of one guidance image from what the panel or an API client sent, or None.

    ``label`` names the image in messages ("guidance image 2"), ``image_size`` is its upright
    size (None: the input holds no image), ``decode(value, what)`` reads an image value (a PIL
    image, an array or base64) as the image inputs are read.

    Raises:
        FlexDiffuseError: an unreadable mask, or a mask for an input without an image.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    what = f"mask of the {label}"
    if isinstance(value, Mapping):
        values = painted(value, what, decode)
        if values is None:
            return None
        if image_size is not None:
            values = values.resize(image_size, Image.Resampling.BILINEAR)
    else:
        values = mask_values(decode(value, what))
    if image_size is None:
        raise FlexDiffuseError(
            f"The {label} has a mask but no image: add the image, or remove its mask."
        )
    return GuidanceMask(values, image_size, image_digest(values))


def painted(value: Mapping[str, Any], what: str, decode: Any) -> Image.Image | None:
    """The strokes painted in an image editor's value, 255 where painted (None: none)."""
    if "mask" in value:  # gradio 3's sketch tool: the strokes, white on black
        strokes = _layers(value.get("mask"))
    elif "layers" in value:  # gradio 4's ImageEditor: transparent layers, opaque where painted
        strokes = _layers(value.get("layers"))
    else:
        raise FlexDiffuseError(
            f"The {what} is an object with neither 'mask' (gradio 3's sketch) nor 'layers' "
            "(gradio 4's image editor). Send the mask as an image: white where the image may "
            "be taken."
        )
    layers = [mask_values(decode(stroke, what)) for stroke in strokes]
    layers = [layer for layer in layers if layer.getbbox() is not None]
    if not layers:
        return None
    union = np.maximum.reduce([np.asarray(layer.resize(layers[0].size)) for layer in layers])
    return Image.fromarray(union, mode="L")


def mask_values(image: Image.Image) -> Image.Image:
    """An uploaded mask as 0..255 (mode ``L``): its transparency where it has any (opaque may
    be taken), else its brightness (white may be taken)."""
    alpha = _alpha(image)
    if alpha is not None and alpha.getextrema() != (255, 255):
        return alpha
    return to_rgb(image).convert("L")


def mask_error(label: str, error: MaskError) -> FlexDiffuseError:
    """The core's mask refusal as the job's error, naming the image it belongs to."""
    return FlexDiffuseError(f"The mask of the {label}: {error}")


def _alpha(image: Image.Image) -> Image.Image | None:
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode == "P" and "transparency" in image.info
    ):
        return image.convert("RGBA").getchannel("A")
    return None


def _layers(layers: Any) -> Sequence[Any]:
    if layers is None or (isinstance(layers, str) and not layers.strip()):
        return []
    if isinstance(layers, (list, tuple)):
        return layers
    return [layers]
