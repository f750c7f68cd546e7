"""docs/algorithm.md §1: how well each image token aligns with each prompt position."""

from __future__ import annotations

import torch
import torch.nn.functional as F

SOFTMAX_SCALE = 100.0
"""CLIP's logit scale: cosine similarities are multiplied by it before the softmax."""


def alignment(text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Alignment ``A[..., i, p]`` of image token ``i`` with editable text position ``p + 1``.

    ``text`` is ``[..., 77, d]`` (one chunk per leading index), ``image`` is ``[n, d]`` or
    ``[..., n, d]``. The softmax runs over all 77 text positions, the header included, and the
    header column is then dropped, so the result is ``[..., n, 76]`` in float32.
    """
    text_unit = F.normalize(text.float(), dim=-1)
    image_unit = F.normalize(image.float(), dim=-1)
    cosine = image_unit @ text_unit.transpose(-1, -2)
    return torch.softmax(SOFTMAX_SCALE * cosine, dim=-1)[..., 1:]
