"""A1111's conditioning schedules (as the host adapter hands them to the job) and the guided
batches rebuilt from them."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st
from modules import prompt_parser
from sdmodel import FakeSdModel

from flexdiffuse.guides import is_empty_prompt
from flexdiffuse.webui.conds import GuidedRowCache, cond_rows, schedule_index, stack_rows
from flexdiffuse.webui.hosts.a1111 import negative_schedules, prompt_schedules

MODEL = FakeSdModel("sd1")


@given(
    ends=st.lists(st.integers(0, 30), min_size=1, max_size=5, unique=True), step=st.integers(0, 40)
)
def test_schedule_index_picks_the_entry_a1111_uses(ends, step):
    entries = [
        prompt_parser.ScheduledPromptConditioning(end, torch.tensor([i]))
        for i, end in enumerate(sorted(ends))
    ]
    batch = prompt_parser.reconstruct_cond_batch([entries], step)
    last_steps = [entry.end_at_step for entry in entries]
    assert entries[schedule_index(last_steps, step)].cond.equal(batch[0])


def test_rows_and_stacking_match_a1111s_rebuild():
    prompts = ["a [cat:dog:2] AND a long " + " ".join(["word"] * 90), "plain"]
    multicond = prompt_parser.get_multicond_learned_conditioning(MODEL, prompts, 4)
    uncond = prompt_parser.get_learned_conditioning(MODEL, ["bad", "bad"], 4)
    for step in range(5):
        _, expected = prompt_parser.reconstruct_multicond_batch(multicond, step)
        rows = list(cond_rows(prompt_schedules(multicond), step))
        assert [item for item, _ in rows] == [0, 0, 1]
        assert stack_rows([cond for _, cond in rows]).equal(expected)
        expected_uncond = prompt_parser.reconstruct_cond_batch(uncond, step)
        negatives = cond_rows(negative_schedules(uncond), step)
        assert stack_rows([c for _, c in negatives]).equal(expected_uncond)
    every = list(cond_rows(prompt_schedules(multicond), None))
    assert len(every) == 4  # cat, dog, the long sub-prompt, plain


def test_sdxl_dicts_stack_key_by_key():
    model = FakeSdModel("sdxl")
    multicond = prompt_parser.get_multicond_learned_conditioning(model, ["a AND b"], 2)
    _, expected = prompt_parser.reconstruct_multicond_batch(multicond, 0)
    stacked = stack_rows([cond for _, cond in cond_rows(prompt_schedules(multicond), 0)])
    assert stacked.keys() == expected.keys()
    for key in stacked:
        assert stacked[key].equal(expected[key])


def test_guided_batches_guide_each_conditioning_once_and_reuse_batches():
    calls = []

    def guide(stack, empty):
        calls.append((stack.shape[0], empty))
        return stack + (100 if empty else 1)

    prompts = ["", "x", "y", "z " * 80]
    multicond = prompt_parser.get_multicond_learned_conditioning(MODEL, prompts, 3)
    empty = prompt_parser.get_learned_conditioning(MODEL, [""], 3)[0][0].cond
    batches = GuidedRowCache(guide, lambda cond: is_empty_prompt(cond, empty))
    batches.prepare(cond_rows(prompt_schedules(multicond), None))
    # One call per shape and kind: the empty prompt, "x" and "y" together, the long prompt.
    assert sorted(calls) == [(1, False), (1, True), (2, False)]
    first = batches.batch(cond_rows(prompt_schedules(multicond), 0))
    again = batches.batch(cond_rows(prompt_schedules(multicond), 2))
    assert again is first
    assert len(calls) == 3
    _, original = prompt_parser.reconstruct_multicond_batch(multicond, 0)
    offsets = torch.tensor([100.0, 1.0, 1.0, 1.0]).view(4, 1, 1)
    assert first[:, :77].equal(original[:, :77] + offsets)
    batches.clear()
    batches.batch(cond_rows(prompt_schedules(multicond), 0))
    assert len(calls) == 6
