"""Spec invariants of guide() and pure_image_guidance(), and their input errors."""

from __future__ import annotations

import logging

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flexdiffuse import PURE_IMAGE_WARNING, GuidanceParams, guide, pure_image_guidance
from flexdiffuse.alignment import alignment
from flexdiffuse.assignment import assign
from tests.helpers import guidance_params, random_tokens

D = 32
NO_WEIGHTS = GuidanceParams(linear=0, clustered=0, threshold_mult=0)


def example(chunks: int = 1, *lead: int, n: int = 257, seed: int = 0):
    image = random_tokens(n, D, seed=seed)
    text = random_tokens(*lead, 77 * chunks, D, seed=seed + 1)
    return text, image


def test_zero_weights_return_input_bit_for_bit():
    text, image = example(2, 3)
    out = guide(text, image, NO_WEIGHTS)
    assert torch.equal(out, text)
    assert out is not text


@settings(max_examples=40)
@given(params=guidance_params, seed=st.integers(0, 1000), use_concepts=st.booleans())
def test_header_of_every_chunk_never_changes(params, seed, use_concepts):
    text, image = example(3, 2, seed=seed)
    concepts = random_tokens(77, D, seed=seed + 5) if use_concepts else None
    out = guide(text, image, params, concepts)
    torch.testing.assert_close(out[:, ::77], text[:, ::77], rtol=0, atol=0)


def test_inputs_are_not_modified():
    text, image = example(2, 2)
    concepts = random_tokens(77, D, seed=9)
    copies = [t.clone() for t in (text, image, concepts)]
    guide(text, image, GuidanceParams(reuse=False), concepts)
    pure_image_guidance(text, image)
    for before, after in zip(copies, (text, image, concepts), strict=True):
        assert torch.equal(before, after)


def test_negative_weight_moves_away_from_the_image():
    text, image = example()
    text = text + 3.0  # a shared offset lowers the alignment contrast: partial moves happen
    taken = assign(alignment(text, image), reuse=True)
    target = image[taken.index]
    weight = -0.5 * torch.arange(76) / 75
    out = guide(text, image, GuidanceParams(linear=-0.5, clustered=0, threshold_mult=0))
    before = (text[1:] - target).norm(dim=-1)
    after = (out[1:] - target).norm(dim=-1)
    partial = weight.abs() < 1 - taken.score
    assert partial[1:].sum() > 30
    assert (after[1:][partial[1:]] > before[1:][partial[1:]]).all()
    # The |iw| >= 1 - s rule of §4: a token aligned that well takes the image token whole.
    assert torch.equal(out[1:][~partial & (weight != 0)], target[~partial & (weight != 0)])
    assert torch.equal(out[1], text[1])  # the first editable position has weight 0


@pytest.mark.parametrize("cap", [0.0, 0.1, 0.35])
def test_max_cap_bounds_every_partial_move(cap):
    text, image = example(1, 2)
    params = GuidanceParams(linear=1, clustered=0.5, threshold_mult=1, max_guidance=cap)
    taken = assign(alignment(text, image), reuse=True)
    target = image[taken.index]
    out = guide(text, image, params)
    moved = (out[..., 1:, :] - text[..., 1:, :]).norm(dim=-1)
    full = (target - text[..., 1:, :]).norm(dim=-1)
    whole = torch.isclose(out[..., 1:, :], target).all(dim=-1)
    # Either the token took its image token whole (it was aligned enough) or moved <= cap.
    assert (whole | (moved <= cap * full + 1e-5)).all()
    if cap == 0:
        assert torch.equal(out, text)


def test_reuse_off_never_maps_one_image_token_twice():
    text, image = example(2, 2, n=100)
    for order in ("fit", "text"):
        taken = assign(alignment(text.reshape(-1, 77, D), image), reuse=False, order=order)
        for row in taken.index:
            assert len(set(row.tolist())) == 76
    # With a full weight and cap every position takes its image token whole: all distinct.
    params = GuidanceParams(linear=1, max_guidance=1, threshold_mult=0, clustered=0, reuse=False)
    out = guide(text[..., :77, :], image, params)
    for row in out.reshape(-1, 77, D):
        taken_rows = {tuple(t.tolist()) for t in row[2:]}  # position 1 has weight 0
        assert len(taken_rows) == 75


def test_fewer_image_tokens_than_positions_leave_the_rest_unchanged():
    text, image = example(n=10)
    params = GuidanceParams(linear=1, max_guidance=1, reuse=False)
    out = guide(text, image, params)
    changed = (out != text).any(dim=-1)
    assert 0 < int(changed.sum()) <= 10


def test_batch_of_prompts_equals_each_prompt_alone():
    text, image = example(2, 3, 2)
    concepts = random_tokens(77, D, seed=3)
    params = GuidanceParams(reuse=False, order="text", clustered=-0.2)
    together = guide(text, image, params, concepts)
    for i in range(3):
        for j in range(2):
            alone = guide(text[i, j], image, params, concepts)
            torch.testing.assert_close(together[i, j], alone, rtol=1e-6, atol=1e-6)


def test_each_chunk_is_guided_on_its_own():
    text, image = example(3)
    params = GuidanceParams(reuse=False)
    together = guide(text, image, params)
    for c in range(3):
        chunk = text[77 * c : 77 * (c + 1)]
        torch.testing.assert_close(together[77 * c : 77 * (c + 1)], guide(chunk, image, params))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_output_keeps_dtype_and_zero_weights_stay_exact(dtype):
    text, image = example(2, 2)
    text = text.to(dtype)
    out = guide(text, image.to(dtype), GuidanceParams(reuse=False))
    assert out.dtype == dtype
    assert out.shape == text.shape
    assert torch.equal(guide(text, image.half(), NO_WEIGHTS), text)


def test_only_the_finite_check_reads_back_from_the_device():
    """Meta tensors have no data: any .item(), .tolist() or .cpu() on the path fails. With
    ``check_finite=False`` the whole path runs on them, so guidance itself never syncs with
    the host; the finiteness check (on by default) is the one read, of one flag."""
    text, image = example(3, 4)
    concepts = random_tokens(77, D, seed=2).to("meta")
    meta_text, meta_image = text.to("meta"), image.to("meta")
    for params in (GuidanceParams(), GuidanceParams(reuse=False, order="text")):
        out = guide(meta_text, meta_image, params, concepts, check_finite=False)
        assert out.device.type == "meta"
        assert out.shape == text.shape
        with pytest.raises(RuntimeError, match="meta"):
            guide(meta_text, meta_image, params, concepts)
    unchecked = pure_image_guidance(meta_text, meta_image, check_finite=False)
    assert unchecked.device.type == "meta"
    with pytest.raises(RuntimeError, match="meta"):
        pure_image_guidance(meta_text, meta_image)


def test_pure_image_guidance_keeps_header_and_takes_first_image_tokens(caplog):
    text, image = example(2, 2)
    with caplog.at_level(logging.WARNING):
        out = pure_image_guidance(text, image.double())
    assert PURE_IMAGE_WARNING in caplog.text
    assert out.dtype == text.dtype
    chunks, original = out.reshape(-1, 77, D), text.reshape(-1, 77, D)
    assert torch.equal(chunks[:, 0], original[:, 0])
    assert torch.equal(chunks[:, 1:], image[:76].expand(chunks.shape[0], 76, D))


def test_pure_image_guidance_with_few_image_tokens_keeps_the_rest():
    text, image = example(n=5)
    out = pure_image_guidance(text, image)
    assert torch.equal(out[1:6], image)
    assert torch.equal(out[6:], text[6:])


@pytest.mark.parametrize(
    ("text_shape", "image_shape", "concept_shape", "message"),
    [
        ((77, D), (257, D + 1), None, "width 33 but the text states have width 32"),
        ((76, D), (257, D), None, "multiple of 77 tokens"),
        ((0, D), (257, D), None, "multiple of 77 tokens"),
        ((D,), (257, D), None, "text_cond must be a tensor"),
        ((77, D), (0, D), None, r"image_tokens must be \[n, 32\]"),
        ((77, D), (1, 257, D), None, r"image_tokens must be a tensor \[n, 32\]"),
        ((77, D), (257, D), (76, D), r"concept_cond must be \[77, 32\]"),
        ((77, D), (257, D), (77, 16), "concept_cond has width 16"),
    ],
)
def test_bad_shapes_raise_clear_errors(text_shape, image_shape, concept_shape, message):
    concepts = torch.zeros(concept_shape) if concept_shape else None
    with pytest.raises(ValueError, match=message):
        guide(torch.zeros(text_shape), torch.ones(image_shape), GuidanceParams(), concepts)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("where", ["text_cond", "image_tokens", "concept_cond"])
def test_non_finite_values_raise(bad, where):
    tensors = {
        "text_cond": random_tokens(77, D, seed=1),
        "image_tokens": random_tokens(257, D, seed=2),
        "concept_cond": random_tokens(77, D, seed=3),
    }
    tensors[where][5, 3] = bad
    with pytest.raises(ValueError, match=f"{where} contains NaN or infinite values"):
        guide(
            tensors["text_cond"], tensors["image_tokens"], GuidanceParams(), tensors["concept_cond"]
        )


def test_integer_tensors_are_rejected():
    with pytest.raises(ValueError, match="floating point"):
        guide(torch.zeros(77, D, dtype=torch.long), torch.ones(257, D), GuidanceParams())
    with pytest.raises(ValueError, match="floating point"):
        guide(torch.zeros(77, D), torch.ones(257, D, dtype=torch.int32), GuidanceParams())
