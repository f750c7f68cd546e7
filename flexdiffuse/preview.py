"""Why a prompt moves as it does: the guidance decisions of every prompt position.

:func:`explain` runs the same steps as :func:`~flexdiffuse.engine.guide` (alignment,
assignment, weights, tween, concepts) and reports their outcome per position instead of the
moved states, for hosts to show users what the sliders do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .alignment import alignment
from .assignment import assign
from .concepts import concept_hits, concept_map
from .engine import CHUNK, check_inputs
from .params import GuidanceParams
from .tween import tween_plan
from .weights import guidance_weights


@dataclass(frozen=True)
class PositionReport:
    """What guidance does at one editable position of one prompt chunk.

    ``image_token`` is the index of the image token it is mapped to (-1: none);
    ``alignment`` is that token's alignment with the position (the spec's score);
    ``weight`` how far it moves toward it (negative: away); ``whole`` whether it takes the
    token whole; ``concept`` whether a mapping concept decided it.
    """

    chunk: int
    position: int
    image_token: int
    alignment: float
    weight: float
    whole: bool
    concept: bool

    @property
    def moved(self) -> bool:
        """Whether the position changes at all."""
        return self.whole or self.weight != 0


def explain(
    text_cond: torch.Tensor,
    image_tokens: torch.Tensor,
    params: GuidanceParams,
    concept_cond: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
) -> list[PositionReport]:
    """The report of every editable position of one prompt ``[77*k, d]``, chunk by chunk.

    Raises:
        ValueError: inputs that :func:`~flexdiffuse.engine.guide` would refuse.
    """
    check_inputs(text_cond, image_tokens, concept_cond, token_weights)
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    image = image_tokens.to(chunks.device)
    if token_weights is not None:
        token_weights = token_weights.to(device=chunks.device, dtype=torch.float32)
    align = alignment(chunks, image)
    taken = assign(align, reuse=params.reuse, order=params.order)
    index, score = taken.index, taken.score
    if params.has_weights:
        weights = guidance_weights(
            score,
            linear=params.linear,
            clustered=params.clustered,
            threshold_mult=params.threshold_mult,
            threshold_floor=params.threshold_floor,
        )
        weight, whole = tween_plan(taken, weights, params.max_guidance, token_weights)
    else:  # guide() leaves the prompt as it is
        weight, whole = torch.zeros_like(score), torch.zeros_like(score, dtype=torch.bool)
    concept = torch.zeros_like(whole)
    if concept_cond is not None:
        hits = concept_hits(
            chunks, concept_map(concept_cond.to(chunks.device), image), params.concept_threshold
        )
        concept = hits.hit
        mix = torch.ones_like(weight)
        if token_weights is not None:
            mix = token_weights[hits.image_index.clamp(min=0)].clamp(max=1)
        index = torch.where(concept, hits.image_index, index)
        weight = torch.where(concept, mix, weight)
        whole = torch.where(concept, mix >= 1, whole)
        mapped_score = align.gather(-2, index.clamp(min=0).unsqueeze(-2)).squeeze(-2)
        score = torch.where(concept, mapped_score, score)
    rows = zip(
        index.tolist(),
        score.tolist(),
        weight.tolist(),
        whole.tolist(),
        concept.tolist(),
        strict=True,
    )
    return [
        PositionReport(c, k + 1, i, s, w, h, m)
        for c, chunk in enumerate(rows)
        for k, (i, s, w, h, m) in enumerate(zip(*chunk, strict=True))
    ]
