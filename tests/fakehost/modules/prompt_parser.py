"""Fake ``modules.prompt_parser``: prompt schedules and the per-step batch rebuild.

Supports the prompt syntax the tests use: AND (with ``:weight``), one ``[from:to:when]``
edit (``when`` a step number, or a fraction of the steps) and one ``[a|b]`` alternation.
"""

import re
from collections import namedtuple

import torch

ScheduledPromptConditioning = namedtuple("ScheduledPromptConditioning", ["end_at_step", "cond"])


class SdConditioning(list):
    def __init__(self, prompts, is_negative_prompt=False, width=None, height=None, copy_from=None):
        super().__init__()
        self.extend(prompts)
        copy_from = prompts if copy_from is None else copy_from
        self.is_negative_prompt = is_negative_prompt or getattr(
            copy_from, "is_negative_prompt", False
        )
        self.width = width or getattr(copy_from, "width", None)
        self.height = height or getattr(copy_from, "height", None)


class ComposableScheduledPromptConditioning:
    def __init__(self, schedules, weight=1.0):
        self.schedules = schedules
        self.weight = weight


class MulticondLearnedConditioning:
    def __init__(self, shape, batch):
        self.shape = shape
        self.batch = batch


class DictWithShape(dict):
    def __init__(self, x, shape):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape


_EDIT = re.compile(r"\[([^\[\]:|]*):([^\[\]:|]*):\s*([\d.]+)\s*\]")
_ALTERNATE = re.compile(r"\[([^\[\]:|]*)\|([^\[\]:|]*)\]")


def prompt_schedule(prompt, steps):
    """[(end_at_step, text)] for one prompt."""
    edit = _EDIT.search(prompt)
    if edit:
        when = float(edit.group(3))
        at = int(when * steps) if when < 1 else int(when)
        before = prompt[: edit.start()] + edit.group(1) + prompt[edit.end() :]
        after = prompt[: edit.start()] + edit.group(2) + prompt[edit.end() :]
        return [(at, before), (steps, after)]
    alternate = _ALTERNATE.search(prompt)
    if alternate:
        options = alternate.groups()
        return [
            (
                step,
                prompt[: alternate.start()] + options[(step - 1) % 2] + prompt[alternate.end() :],
            )
            for step in range(1, steps + 1)
        ]
    return [(steps, prompt)]


def get_learned_conditioning(model, prompts, steps, hires_steps=None, use_old_scheduling=False):
    res = []
    cache = {}
    for prompt in prompts:
        if prompt in cache:
            res.append(cache[prompt])
            continue
        schedule = get_learned_conditioning_prompt_schedules([prompt], steps)[0]
        conds = model.get_learned_conditioning(
            SdConditioning([text for _, text in schedule], copy_from=prompts)
        )
        entries = []
        for i, (end_at_step, _) in enumerate(schedule):
            cond = {k: v[i] for k, v in conds.items()} if isinstance(conds, dict) else conds[i]
            entries.append(ScheduledPromptConditioning(end_at_step, cond))
        cache[prompt] = entries
        res.append(entries)
    return res


_AND = re.compile(r"\bAND\b")
_WEIGHT = re.compile(r"^(.*?)(?:\s*:\s*([-+]?\d*\.?\d+))?\s*$", re.DOTALL)


def get_learned_conditioning_prompt_schedules(
    prompts, base_steps, hires_steps=None, use_old_scheduling=False
):
    return [prompt_schedule(prompt, base_steps) for prompt in prompts]


def get_multicond_prompt_list(prompts):
    flat, res_indexes = [], []
    for prompt in prompts:
        item = []
        for sub in _AND.split(prompt):
            text, weight = _WEIGHT.match(sub).groups()
            text = text.strip()
            if text not in flat:
                flat.append(text)
            item.append((flat.index(text), float(weight) if weight else 1.0))
        res_indexes.append(item)
    return res_indexes, SdConditioning(flat, copy_from=prompts), {t: i for i, t in enumerate(flat)}


def get_multicond_learned_conditioning(
    model, prompts, steps, hires_steps=None, use_old_scheduling=False
):
    indexes, flat, _ = get_multicond_prompt_list(prompts)
    learned = get_learned_conditioning(model, flat, steps)
    batch = [
        [ComposableScheduledPromptConditioning(learned[i], w) for i, w in item] for item in indexes
    ]
    return MulticondLearnedConditioning(shape=(len(prompts),), batch=batch)


def _in_force(schedules, current_step):
    for entry in schedules:
        if current_step <= entry.end_at_step:
            return entry.cond
    return schedules[0].cond


def _pad_to(tensor, tokens):
    if tensor.ndim < 2 or tensor.shape[0] == tokens:
        return tensor
    return torch.vstack([tensor, tensor[-1:].repeat(tokens - tensor.shape[0], 1)])


def stack_conds(tensors):
    tokens = max(t.shape[0] for t in tensors)
    return torch.stack([_pad_to(t, tokens) for t in tensors])


def reconstruct_cond_batch(c, current_step):
    rows = [_in_force(schedules, current_step) for schedules in c]
    if isinstance(rows[0], dict):
        stacked = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
        return DictWithShape(stacked, stacked["crossattn"].shape)
    return torch.stack(rows)


def reconstruct_multicond_batch(c, current_step):
    tensors, conds_list = [], []
    for composable_prompts in c.batch:
        item = []
        for composable in composable_prompts:
            item.append((len(tensors), composable.weight))
            tensors.append(_in_force(composable.schedules, current_step))
        conds_list.append(item)
    if isinstance(tensors[0], dict):
        stacked = {k: stack_conds([t[k] for t in tensors]) for k in tensors[0]}
        return conds_list, DictWithShape(stacked, stacked["crossattn"].shape)
    return conds_list, stack_conds(tensors)
