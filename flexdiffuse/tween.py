"""docs/algorithm.md §4: move each editable text token toward its image token by its weight."""

from __future__ import annotations

from typing import NamedTuple

import torch

from .assignment import Assignment


class TweenPlan(NamedTuple):
    """How each editable position moves, ``[..., 76]`` each.

    ``weight`` is the applied weight (0 where nothing moves), ``whole`` marks positions that
    take their image token whole.
    """

    weight: torch.Tensor
    whole: torch.Tensor


def tween_plan(
    assignment: Assignment,
    weights: torch.Tensor,
    max_guidance: float,
    token_weights: torch.Tensor | None = None,
    strength: float = 1.0,
) -> TweenPlan:
    """Decide how far each editable position moves toward its image token.

    A position's weight is capped at ``max_guidance`` (negative weights are not capped),
    multiplied by the image ``strength`` (§16), then by its image token's weight in
    ``token_weights`` ``[n]`` if given. A weight of 0, or no assigned image token, keeps the
    text token; a weight whose size reaches ``1 - score`` takes the image token whole;
    anything else interpolates (negative weights push away from the image).
    """
    capped = weights.clamp(max=max_guidance)
    if strength != 1:  # at 1 no arithmetic at all: bit for bit the method without strength
        capped = capped * strength
    if token_weights is not None:
        capped = capped * token_weights[assignment.index.clamp(min=0)]
    applied = torch.where(assignment.assigned, capped, 0.0)
    whole = (applied != 0) & (applied.abs() >= 1.0 - assignment.score)
    return TweenPlan(applied, whole)


def tween(
    text: torch.Tensor, image: torch.Tensor, index: torch.Tensor, plan: TweenPlan
) -> torch.Tensor:
    """Tween the editable positions of ``text`` ``[..., 77, d]`` toward ``image`` ``[n, d]``.

    Position ``k`` moves toward image token ``index[..., k]`` as ``plan`` says; the header
    (position 0) is never changed. Works in float32; returns float32.
    """
    editable = text[..., 1:, :].float()
    target = image.float()[index.clamp(min=0)]
    weight = plan.weight.unsqueeze(-1)
    moved = torch.where(plan.whole.unsqueeze(-1), target, editable + (target - editable) * weight)
    keep = (weight == 0).expand_as(editable)
    return torch.cat([text[..., :1, :].float(), torch.where(keep, editable, moved)], dim=-2)
