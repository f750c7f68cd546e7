"""A1111's prompt conditionings, and their guided twins rebuilt for each sampling step.

A1111 encodes each prompt once into *schedules*: prompt editing (``[a:b:0.5]``) and
alternation switch between tensors at given steps, and AND gives several sub-prompts per image.
Every step, ``CFGDenoiser`` stacks the tensors in force into the batch that the UNet sees
(``prompt_parser.reconstruct_multicond_batch`` / ``reconstruct_cond_batch``).

FlexDiffuse guides each scheduled tensor once, then rebuilds the batch for a step the way A1111
does, from the guided tensors, and keeps the result: sampling pays one dictionary lookup per
step. The structures are read by duck typing (``.batch``, ``.schedules``, ``.end_at_step``,
``.cond``), so nothing here imports A1111.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

Cond = torch.Tensor | dict[str, torch.Tensor]
"""One prompt's conditioning: ``[77*k, d]``, or SDXL's dict with ``crossattn`` and ``vector``."""

GuideRow = Callable[[Cond, bool], Cond]
"""Returns the guided copy of one conditioning; the flag says its prompt is empty."""


def schedule_index(schedules: Sequence[Any], step: int) -> int:
    """Index of the schedule entry in force at ``step``: the first ending at or after it.

    Past the last entry A1111 falls back to the first, and so does this.
    """
    for index, entry in enumerate(schedules):
        if step <= entry.end_at_step:
            return index
    return 0


def cond_rows(multicond: Any, step: int | None) -> Iterator[tuple[int, Cond]]:
    """(batch item, conditioning) of each row of the prompt batch at ``step``, in row order.

    ``multicond`` is a ``MulticondLearnedConditioning``: per batch item, its AND sub-prompts.
    With ``step=None``, every scheduled conditioning of every row, for all steps.
    """
    for item, sub_prompts in enumerate(multicond.batch):
        for sub_prompt in sub_prompts:
            yield from _scheduled(item, sub_prompt.schedules, step)


def uncond_rows(uncond: Any, step: int | None) -> Iterator[tuple[int, Cond]]:
    """Like :func:`cond_rows` for the negative prompts (one schedule list per batch item)."""
    for item, schedules in enumerate(uncond):
        yield from _scheduled(item, schedules, step)


def _scheduled(item: int, schedules: Sequence[Any], step: int | None) -> Iterator[tuple[int, Cond]]:
    if step is None:
        for entry in schedules:
            yield item, entry.cond
    else:
        yield item, schedules[schedule_index(schedules, step)].cond


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


class GuidedBatches:
    """Guided batches for the steps of one sampling pass, each built once.

    ``guide_row`` guides one conditioning; ``empty_prompts[i]`` says whether batch item ``i``
    has an empty prompt (pure image guidance). Guided conditionings are remembered by the
    identity of A1111's tensors (kept alive here, so identities are not reused), guided
    batches by the identities of their rows.
    """

    def __init__(self, guide_row: GuideRow) -> None:
        self._guide_row = guide_row
        self._rows: dict[tuple[int, bool], tuple[Cond, Cond]] = {}
        self._batches: dict[tuple[tuple[int, bool], ...], Cond] = {}

    def guided(self, cond: Cond, empty: bool) -> Cond:
        """The guided copy of one conditioning, computed on first use."""
        key = (id(cond), empty)
        if key not in self._rows:
            self._rows[key] = (cond, self._guide_row(cond, empty))
        return self._rows[key][1]

    def prepare(self, rows: Iterator[tuple[int, Cond]], empty_prompts: Sequence[bool]) -> None:
        """Guide every conditioning of ``rows`` now (so errors surface before sampling)."""
        for item, cond in rows:
            self.guided(cond, _is_empty(empty_prompts, item))

    def batch(self, rows: Iterator[tuple[int, Cond]], empty_prompts: Sequence[bool]) -> Cond:
        """The guided batch for ``rows`` (see :func:`cond_rows`), built once per distinct rows."""
        selected = [(cond, _is_empty(empty_prompts, item)) for item, cond in rows]
        key = tuple((id(cond), empty) for cond, empty in selected)
        if key not in self._batches:
            self._batches[key] = stack_rows([self.guided(c, empty) for c, empty in selected])
        return self._batches[key]

    def clear(self) -> None:
        """Forget everything (a new batch of prompts comes with new conditionings)."""
        self._rows.clear()
        self._batches.clear()


def _is_empty(empty_prompts: Sequence[bool], item: int) -> bool:
    return item < len(empty_prompts) and empty_prompts[item]
