"""Why a prompt moves as it does: the guidance decisions of every prompt position.

:func:`explain` reports the same :class:`~flexdiffuse.engine.GuidancePlan` that
:func:`~flexdiffuse.engine.guide` applies, position by position, for hosts to show users what
the sliders do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .engine import CHUNK, check_inputs, plan_guidance
from .params import GuidanceParams


@dataclass(frozen=True)
class PositionReport:
    """What guidance does at one editable position of one prompt chunk.

    ``image_token`` is the index of the image token it is mapped to (-1: none);
    ``alignment`` is that token's alignment with the position (the score of docs/algorithm.md §2);
    ``weight`` how far it moves toward it (negative: away); ``whole`` whether it takes the
    token whole; ``concept`` whether a mapping concept decided it; ``floor`` the threshold
    floor of its chunk (the parameter, or the automatic floor of docs/algorithm.md §15).
    """

    chunk: int
    position: int
    image_token: int
    alignment: float
    weight: float
    whole: bool
    concept: bool
    floor: float

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
    plan = plan_guidance(
        chunks, image_tokens.to(chunks.device), params, concept_cond, token_weights
    )
    rows = zip(
        plan.index.tolist(),
        plan.score.tolist(),
        plan.weight.tolist(),
        plan.whole.tolist(),
        plan.concept.tolist(),
        strict=True,
    )
    floors = plan.floor.tolist()
    return [
        PositionReport(c, k + 1, i, s, w, h, m, floors[c])
        for c, chunk in enumerate(rows)
        for k, (i, s, w, h, m) in enumerate(zip(*chunk, strict=True))
    ]
