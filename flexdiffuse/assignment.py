"""docs/algorithm.md §2: which image token each editable text position takes."""

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
    it each image token is taken at most once, greedily in the ``order`` of
    docs/algorithm.md §2: ``"fit"`` (best pairs first) or ``"text"`` (positions left to right).
    """
    if reuse:
        score, index = align.max(dim=-2)
        return Assignment(index, score)
    if order == "fit":
        return _assign_optimal_fit(align)
    if order == "text":
        return _assign_text_order(align)
    raise ValueError(f"order must be 'fit' or 'text', got {order!r}.")


def _assign_optimal_fit(align: torch.Tensor) -> Assignment:
    *batch, n, positions = align.shape
    by_position = align.transpose(-1, -2).reshape(-1, positions, n).contiguous()
    # A position's final image is among its first `steps` candidates (score descending, index
    # ascending): each image ranked above it was taken by one of the other positions.
    steps = min(n, positions)
    images = _ranked_candidates(by_position, steps)
    trash = torch.full_like(by_position[..., :1], -1.0)  # target for images a row lacks
    values = torch.cat([by_position.gather(-1, images), trash], dim=-1)
    slot = torch.full_like(images[..., :1], steps).expand_as(by_position).clone()
    columns = torch.arange(steps, device=align.device).expand_as(images)
    slot.scatter_(-1, images, columns)  # slot[r, p, i]: column of image i in row p, or trash
    rows = torch.arange(values.shape[0], device=align.device)
    picks = []
    for _ in range(steps):
        # Flattened argmax = §2's order: score, then position, then image index.
        score, flat = values.flatten(1).max(dim=1)
        position = flat // (steps + 1)
        image = images[rows, position, flat % (steps + 1)]
        picks.append((position, image, score))
        values[rows, position] = -1.0  # alignments are >= 0, so -1 never wins again
        values.scatter_(2, slot[rows, :, image].unsqueeze(-1), -1.0)
    return _scatter_picks(picks, batch, n, positions, align)


def _ranked_candidates(by_position: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of each row's ``count`` best images, by score descending then index ascending."""
    n = by_position.shape[-1]
    # Non-negative float32 bits sort like the floats; the low word breaks ties by index.
    bits = by_position.view(torch.int32).to(torch.int64)
    reverse_index = n - 1 - torch.arange(n, device=by_position.device)
    return ((bits << 32) | reverse_index).topk(count, dim=-1).indices


def _assign_text_order(align: torch.Tensor) -> Assignment:
    *batch, n, positions = align.shape
    by_position = align.transpose(-1, -2).reshape(-1, positions, n)
    taken = torch.zeros_like(by_position[:, 0])  # 0 for free images, -inf once taken
    picks = []
    for position in range(min(n, positions)):
        score, image = (by_position[:, position] + taken).max(dim=1)
        taken.scatter_(1, image[:, None], float("-inf"))
        picks.append((position, image, score))
    return _scatter_picks(picks, batch, n, positions, align)


def _scatter_picks(
    picks: list[tuple[torch.Tensor | int, torch.Tensor, torch.Tensor]],
    batch: list[int],
    n: int,
    positions: int,
    align: torch.Tensor,
) -> Assignment:
    """Turn per-step (position, image, score) picks into a full Assignment.

    A pick's position is a tensor of one position per row, or an int shared by all rows.
    """
    rows = align.reshape(-1, n, positions).shape[0]
    index = torch.full((rows, positions), UNASSIGNED, dtype=torch.long, device=align.device)
    score = torch.zeros((rows, positions), dtype=align.dtype, device=align.device)
    if picks:
        where, image, value = zip(*picks, strict=True)
        if isinstance(where[0], int):
            where = [torch.full_like(image[0], p) for p in where]
        position = torch.stack(where, dim=1)
        index.scatter_(1, position, torch.stack(image, dim=1))
        score.scatter_(1, position, torch.stack(value, dim=1))
    return Assignment(index.reshape(*batch, positions), score.reshape(*batch, positions))
