"""Spec section 2: which image token each editable text position takes."""

from __future__ import annotations

from typing import NamedTuple

import torch

UNASSIGNED = -1
"""Image index of a position left without an image token (reuse off, too few image tokens)."""


class Assignment(NamedTuple):
    """Per editable position: the image token index and its alignment score.

    Both are ``[..., 76]``. Unassigned positions have index :data:`UNASSIGNED` and score 0.
    """

    index: torch.Tensor
    score: torch.Tensor

    @property
    def assigned(self) -> torch.Tensor:
        """Boolean mask of positions that took an image token."""
        return self.index != UNASSIGNED


def assign(align: torch.Tensor, *, reuse: bool, order: str = "fit") -> Assignment:
    """Assign image tokens to positions from an alignment ``[..., n, P]``.

    With ``reuse`` every position takes its best image token (lowest index on ties). Without
    it each image token is taken at most once, greedily in the spec's ``order``: ``"fit"``
    (best pairs first) or ``"text"`` (positions left to right).
    """
    if reuse:
        score, index = align.max(dim=-2)
        return Assignment(index, score)
    if order == "fit":
        return _assign_optimal_fit(align)
    if order == "text":
        return _assign_text_order(align)
    raise ValueError(f"order must be 'fit' or 'text', got {order!r}.")


def _empty_assignment(align: torch.Tensor) -> Assignment:
    shape = (*align.shape[:-2], align.shape[-1])
    index = torch.full(shape, UNASSIGNED, dtype=torch.long, device=align.device)
    return Assignment(index, torch.zeros(shape, dtype=align.dtype, device=align.device))


def _assign_optimal_fit(align: torch.Tensor) -> Assignment:
    # Taking the best admissible pair again and again is the sorted greedy of the spec: the
    # flattened argmax over [P, n] breaks score ties by position, then image index.
    *batch, n, positions = align.shape
    free = align.transpose(-1, -2).reshape(-1, positions, n).clone()
    rows = torch.arange(free.shape[0], device=align.device)
    result = _empty_assignment(align.reshape(-1, n, positions))
    for _ in range(min(n, positions)):
        score, flat = free.flatten(1).max(dim=1)
        position, image = flat // n, flat % n
        result.index[rows, position] = image
        result.score[rows, position] = score
        free[rows, position, :] = -1.0  # alignments are > 0, so -1 never wins again
        free[rows, :, image] = -1.0
    return Assignment(
        result.index.reshape(*batch, positions), result.score.reshape(*batch, positions)
    )


def _assign_text_order(align: torch.Tensor) -> Assignment:
    *batch, n, positions = align.shape
    free = align.reshape(-1, n, positions).clone()
    rows = torch.arange(free.shape[0], device=align.device)
    result = _empty_assignment(free)
    for position in range(min(n, positions)):
        score, image = free[:, :, position].max(dim=1)
        result.index[:, position] = image
        result.score[:, position] = score
        free[rows, image, :] = -1.0
    return Assignment(
        result.index.reshape(*batch, positions), result.score.reshape(*batch, positions)
    )
