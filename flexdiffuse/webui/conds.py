"""Prompt conditionings over a pass's steps, and their guided twins rebuilt for each step.

Every webui of the A1111 family encodes each prompt once into *schedules*: prompt editing
(``[a:b:0.5]``) and alternation switch between tensors at given steps, and AND gives several
sub-prompts per image. Every step, the host's denoiser stacks the tensors in force into the
batch that the UNet sees (A1111: ``prompt_parser.reconstruct_multicond_batch`` /
``reconstruct_cond_batch``).

FlexDiffuse guides each scheduled tensor once, then rebuilds the batch for a step the way A1111
does, from the guided tensors, and keeps the result: sampling pays one dictionary lookup per
step. The host adapter turns its own structures into :class:`Schedule` rows (``hosts/``);
nothing here reads a host's objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

Cond = torch.Tensor | dict[str, torch.Tensor]
"""One prompt's conditioning: ``[77*k, d]``, or SDXL's dict with ``crossattn`` and ``vector``."""

GuideStack = Callable[[Cond, bool], Cond]
"""Returns the guided copy of stacked conditionings; the flag says their prompts are empty."""


@dataclass(frozen=True)
class Schedule:
    """One row of a pass's conditioning batch: the batch item (image) it belongs to and its
    conditionings over the steps, each in force up to and including its last step."""

    item: int
    last_steps: tuple[int, ...]
    conds: tuple[Cond, ...]


Schedules = tuple[Schedule, ...]
"""A pass's prompts (or negative prompts) as the rows of its batch, in row order: AND
sub-prompts are rows of their own, with the item of their image."""


def token_states(cond: Cond) -> torch.Tensor:
    """The token states of a conditioning (SDXL's ``crossattn``; others are nothing else)."""
    return cond["crossattn"] if isinstance(cond, dict) else cond


def schedule_index(last_steps: Sequence[int], step: int) -> int:
    """Index of the schedule entry in force at ``step``: the first ending at or after it.

    Past the last entry A1111 falls back to the first, and so does this.
    """
    for index, last in enumerate(last_steps):
        if step <= last:
            return index
    return 0


def cond_rows(schedules: Schedules, step: int | None) -> Iterator[tuple[int, Cond]]:
    """(batch item, conditioning) of each row of the batch at ``step``, in row order.

    With ``step=None``, every scheduled conditioning of every row, for all steps.
    """
    for row in schedules:
        if step is None:
            for cond in row.conds:
                yield row.item, cond
        else:
            yield row.item, row.conds[schedule_index(row.last_steps, step)]


def cond_width(schedules: Schedules) -> int:
    """The width of a batch's conditionings (SDXL: of its token states)."""
    _, cond = next(cond_rows(schedules, None))
    return token_states(cond).shape[-1]


def stack_rows(rows: Sequence[Cond]) -> Cond:
    """Stack conditionings into a batch as A1111 does.

    Rows with fewer tokens are padded by repeating their last token (``stack_conds``); SDXL
    dicts are stacked key by key.
    """
    if isinstance(rows[0], dict):
        return {key: _stack_tensors([row[key] for row in rows]) for key in rows[0]}
    return _stack_tensors(list(rows))


def _stack_tensors(tensors: list[torch.Tensor]) -> torch.Tensor:
    if tensors[0].ndim == 1:  # pooled vectors have no token axis
        return torch.stack(tensors)
    tokens = max(t.shape[0] for t in tensors)
    padded = [
        t if t.shape[0] == tokens else torch.cat([t, t[-1:].expand(tokens - t.shape[0], -1)])
        for t in tensors
    ]
    return torch.stack(padded)


class GuidedRowCache:
    """Guided batches for the steps of one sampling pass, each built once.

    ``guide`` guides a stack of conditionings (``[rows, 77*k, d]``, or SDXL's dict of
    stacks); the flag says their prompts are empty (pure image guidance), as ``is_empty``
    tells of each conditioning. Conditionings are guided once each, those of one shape together
    in one call, and remembered by the identity of A1111's tensors (kept alive here, so
    identities are not reused); guided batches are remembered by the identities of their rows.
    """

    def __init__(self, guide: GuideStack, is_empty: Callable[[Cond], bool] | None = None) -> None:
        self._guide = guide
        self._is_empty = is_empty or (lambda cond: False)
        self._empty: dict[int, bool] = {}
        self._rows: dict[tuple[int, bool], tuple[Cond, Cond]] = {}
        self._batches: dict[tuple[tuple[int, bool], ...], Cond] = {}
        self.took_image = False
        """Whether an empty prompt took the image (pure image guidance) in this pass."""

    def prepare(self, rows: Iterable[tuple[int, Cond]]) -> None:
        """Guide every conditioning of ``rows`` not guided yet (errors surface here)."""
        self._guide_new(self._flagged(rows))

    def batch(self, rows: Iterable[tuple[int, Cond]]) -> Cond:
        """The guided batch for ``rows`` (see :func:`cond_rows`), built once per distinct rows."""
        selected = list(self._flagged(rows))
        key = tuple((id(cond), empty) for cond, empty in selected)
        if key not in self._batches:
            self._guide_new(selected)
            self._batches[key] = stack_rows([self._rows[row][1] for row in key])
        return self._batches[key]

    def _flagged(self, rows: Iterable[tuple[int, Cond]]) -> Iterator[tuple[Cond, bool]]:
        for _, cond in rows:
            empty = self._empty.get(id(cond))
            if empty is None:
                empty = self._empty[id(cond)] = self._is_empty(cond)
            yield cond, empty

    def _guide_new(self, conds: Iterable[tuple[Cond, bool]]) -> None:
        pending: dict[tuple[Any, bool], dict[int, Cond]] = {}
        for cond, empty in conds:
            if (id(cond), empty) not in self._rows:
                pending.setdefault((_shape(cond), empty), {})[id(cond)] = cond
        for (_, empty), group in pending.items():
            stack = list(group.values())
            guided = self._guide(stack_rows(stack), empty)
            self.took_image = self.took_image or empty
            for index, cond in enumerate(stack):
                self._rows[(id(cond), empty)] = (cond, _row(guided, index))

    def clear(self) -> None:
        """Forget everything (a new batch of prompts comes with new conditionings)."""
        self._rows.clear()
        self._batches.clear()
        self._empty.clear()


def _shape(cond: Cond) -> Any:
    if isinstance(cond, dict):
        return tuple((key, tuple(value.shape)) for key, value in cond.items())
    return tuple(cond.shape)


def _row(stacked: Cond, index: int) -> Cond:
    if isinstance(stacked, dict):
        return {key: value[index] for key, value in stacked.items()}
    return stacked[index]
