"""Spec section 4: move each editable text token toward its image token by its weight."""

from __future__ import annotations

import torch

from .assignment import Assignment


def tween(
    text: torch.Tensor,
    image: torch.Tensor,
    assignment: Assignment,
    weights: torch.Tensor,
    max_guidance: float,
) -> torch.Tensor:
    """Tween the editable positions of ``text`` ``[..., 77, d]`` toward ``image`` ``[n, d]``.

    A position's weight is capped at ``max_guidance`` (negative weights are not capped). A
    weight of 0, or no assigned image token, keeps the text token exactly; a weight whose size
    reaches ``1 - score`` takes the image token whole; anything else interpolates (negative
    weights push away from the image). The header (position 0) is never changed. Works in
    float32; returns float32.
    """
    editable = text[..., 1:, :].float()
    target = image.float()[assignment.index.clamp(min=0)]
    capped = weights.clamp(max=max_guidance).unsqueeze(-1)
    score = assignment.score.unsqueeze(-1)
    moved = torch.where(
        capped.abs() >= 1.0 - score, target, editable + (target - editable) * capped
    )
    keep = (capped == 0) | ~assignment.assigned.unsqueeze(-1)
    return torch.cat([text[..., :1, :].float(), torch.where(keep, editable, moved)], dim=-2)
