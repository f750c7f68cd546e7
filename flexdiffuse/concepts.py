"""Spec section 5: the "mapping concepts" prompt picks which image concepts to map."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .alignment import alignment
from .assignment import assign
from .compare import above


class ConceptMap(NamedTuple):
    """The image token each editable concept position takes (``-1`` for none), ``[76]``."""

    image_index: torch.Tensor
    concepts: torch.Tensor


def concept_map(concepts: torch.Tensor, image: torch.Tensor) -> ConceptMap:
    """Step 1: give every editable concept position its own best unused image token.

    ``concepts`` is the encoded concepts prompt ``[77, d]``, ``image`` the image tokens.
    """
    taken = assign(alignment(concepts, image), reuse=False, order="text")
    return ConceptMap(taken.index, concepts)


def apply_concepts(
    guided: torch.Tensor,
    text: torch.Tensor,
    image: torch.Tensor,
    mapping: ConceptMap,
    concept_threshold: float,
) -> torch.Tensor:
    """Steps 2 and 3: text positions that match a concept closely take its image token.

    Each editable position of ``text`` ``[..., 77, d]`` finds its best concept position
    (header included as a candidate); when that is not the header, its score is above
    ``concept_threshold`` and that concept has an image token, the position of ``guided``
    becomes the image token, overriding the tween and ignoring the max cap.
    """
    taken = assign(alignment(text, mapping.concepts), reuse=True)
    concept_index = taken.index  # 0 is the concept prompt's header
    image_index = mapping.image_index[(concept_index - 1).clamp(min=0)]
    hit = (concept_index != 0) & above(taken.score, concept_threshold) & (image_index >= 0)
    target = image.to(guided.dtype)[image_index.clamp(min=0)]
    editable = torch.where(hit.unsqueeze(-1), target, guided[..., 1:, :])
    return torch.cat([guided[..., :1, :], editable], dim=-2)
