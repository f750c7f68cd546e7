"""docs/algorithm.md §5: the "mapping concepts" prompt picks which image concepts to map."""

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


class ConceptHits(NamedTuple):
    """Per editable text position: whether a concept maps it, and to which image token."""

    hit: torch.Tensor
    image_index: torch.Tensor


def concept_hits(text: torch.Tensor, mapping: ConceptMap, concept_threshold: float) -> ConceptHits:
    """Step 2: which editable positions of ``text`` ``[..., 77, d]`` a concept maps.

    Each position finds its best concept position (header included as a candidate); it is
    hit when that is not the header, its score is above ``concept_threshold`` and that concept
    has an image token.
    """
    taken = assign(alignment(text, mapping.concepts), reuse=True)
    concept_index = taken.index  # 0 is the concept prompt's header
    image_index = mapping.image_index[(concept_index - 1).clamp(min=0)]
    hit = (concept_index != 0) & above(taken.score, concept_threshold) & (image_index >= 0)
    return ConceptHits(hit, image_index)


def concept_weights(
    hits: ConceptHits, token_weights: torch.Tensor | None = None, strength: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 3: the weight and whole-take flag of every position a concept maps.

    A mapped position takes its concept's image token whole, ignoring the max cap. With
    ``token_weights`` or an image ``strength`` other than 1 it moves their product of the way
    instead, ``min(strength * t, 1)`` (all of it from 1 up; none at strength 0).
    """
    mix = torch.ones_like(hits.hit, dtype=torch.float32)
    if token_weights is not None:
        mix = token_weights[hits.image_index.clamp(min=0)]
    if strength != 1:
        mix = mix * strength
    mix = mix.clamp(max=1)
    return mix, mix >= 1
