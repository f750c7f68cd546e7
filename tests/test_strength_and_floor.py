"""The image strength (docs/algorithm.md §16) and the automatic threshold floor (§15)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flexdiffuse import GuidanceParams, guide
from flexdiffuse.alignment import alignment
from flexdiffuse.assignment import assign
from flexdiffuse.concepts import concept_hits, concept_map, concept_weights
from flexdiffuse.engine import moves_tokens
from flexdiffuse.guidance import ConditioningGuide, PartGuide
from flexdiffuse.preview import explain
from flexdiffuse.tween import TweenPlan, tween, tween_plan
from flexdiffuse.weights import guidance_weights, threshold_weights
from tests.helpers import guidance_inputs, guidance_params, random_tokens
from tests.oracle import CHUNK, K, oracle_guide

DYADIC_STRENGTHS = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])
"""Powers of two (and 0) scale float32 and float64 alike, so the engine and the oracle meet on
the same side of every "take the image token whole" boundary."""


def todays_guide(text, image, params, concepts=None, token_weights=None):
    """``guide`` as it was before the strength and the automatic floor (commit 9ec8492),
    composed from the same steps: the reference for "strength 1 changes nothing"."""
    chunks = text.reshape(-1, CHUNK, text.shape[-1])
    align = alignment(chunks, image)
    taken = assign(align, reuse=params.reuse, order=params.order)
    weights = guidance_weights(
        taken.score,
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        threshold_floor=params.threshold_floor,
    )
    weight, whole = tween_plan(taken, weights, params.max_guidance, token_weights)
    index = taken.index
    if concepts is not None:
        hits = concept_hits(chunks, concept_map(concepts, image), params.concept_threshold)
        mix, mix_whole = concept_weights(hits, token_weights)
        index = torch.where(hits.hit, hits.image_index, index)
        weight = torch.where(hits.hit, mix, weight)
        whole = torch.where(hits.hit, mix_whole, whole)
    guided = tween(chunks, image, index, TweenPlan(weight, whole))
    return guided.to(text.dtype).reshape(text.shape)


# --- the image strength ---------------------------------------------------------------------


@settings(max_examples=60)
@given(inputs=guidance_inputs(), params=guidance_params, weighted=st.booleans())
def test_strength_one_is_bit_for_bit_the_method_without_it(inputs, params, weighted):
    text, image, concepts = inputs
    params = params.replace(strength=1.0, auto_floor=False)
    weights = torch.tensor([0.5, 1.0, 2.0])[torch.arange(len(image)) % 3] if weighted else None
    expected = todays_guide(text, image, params, concepts, weights)
    assert torch.equal(guide(text, image, params, concepts, token_weights=weights), expected)


@pytest.mark.slow
@settings(max_examples=60)
@given(inputs=guidance_inputs(), params=guidance_params, strength=DYADIC_STRENGTHS, data=st.data())
def test_strength_matches_oracle_with_token_weights(inputs, params, strength, data):
    text, image, concepts = inputs
    params = params.replace(strength=strength)
    choices = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])
    weights = None
    if data.draw(st.booleans()):
        drawn = data.draw(st.lists(choices, min_size=len(image), max_size=len(image)))
        weights = torch.tensor(drawn)
    expected = oracle_guide(text, image, params, concepts, token_weights=weights)
    actual = guide(text, image, params, concepts, token_weights=weights)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("strength", [0.5, 2.0])
def test_strength_is_every_weight_and_the_cap_scaled_together(strength):
    """For S > 0, S scales L, C, Tm and M alike (§16); dyadic values keep it exact."""
    text, image = random_tokens(2, 154, 16, seed=3), random_tokens(60, 16, seed=4)
    text = 0.5 * text + 0.5 * image[torch.arange(154) % 60]  # some strong alignments
    base = GuidanceParams(linear=0.5, clustered=0.25, threshold_mult=0.5, max_guidance=0.5)
    scaled = base.replace(
        linear=base.linear * strength,
        clustered=base.clustered * strength,
        threshold_mult=base.threshold_mult * strength,
        max_guidance=base.max_guidance * strength,
    )
    for floor in ({"threshold_floor": 0.1}, {"auto_floor": True}):
        assert torch.equal(
            guide(text, image, base.replace(strength=strength, **floor)),
            guide(text, image, scaled.replace(**floor)),
        )


@settings(max_examples=80)
@given(
    inputs=guidance_inputs(),
    params=guidance_params,
    dtype=st.sampled_from([torch.float32, torch.float16, torch.float64]),
)
def test_whenever_moves_tokens_is_false_guide_returns_its_input(inputs, params, dtype):
    text, image, concepts = inputs
    text = text.to(dtype) + torch.finfo(dtype).eps / 3  # not float32-exact in float64
    if not moves_tokens(params, concepts=concepts is not None):
        out = guide(text, image, params, concepts)
        assert torch.equal(out, text)
        assert out is not text
    if params.strength == 0:
        assert not moves_tokens(params, concepts=True)
        weights = torch.full((len(image),), 2.0)
        assert torch.equal(guide(text, image, params, concepts, token_weights=weights), text)


@settings(max_examples=40)
@given(inputs=guidance_inputs(), params=guidance_params)
def test_moves_tokens_is_true_whenever_guide_moves_a_token(inputs, params):
    text, image, concepts = inputs
    if not torch.equal(guide(text, image, params, concepts), text):
        assert moves_tokens(params, concepts=concepts is not None)


def test_strength_scales_concepts_up_to_the_whole_token():
    text, image = random_tokens(77, 16, seed=1), random_tokens(90, 16, seed=2)
    concepts = text.clone()  # every position matches its own concept exactly
    params = GuidanceParams(linear=0, clustered=0, threshold_mult=0, concept_threshold=0.5)
    full = explain(text, image, params, concepts)
    assert all(r.concept and r.whole for r in full)
    half = explain(text, image, params.replace(strength=0.5), concepts)
    assert all(r.concept and not r.whole and r.weight == 0.5 for r in half)
    double = explain(text, image, params.replace(strength=2.0), concepts)
    assert all(r.whole and r.weight == 1.0 for r in double)  # min(S * t, 1)
    assert torch.equal(guide(text, image, params.replace(strength=0), concepts), text)


def test_strength_scales_pooled_guidance_up_to_the_image_direction():
    pooled_image = random_tokens(8, seed=5)
    vector = random_tokens(2, 12, seed=6)
    part = PartGuide(0, random_tokens(10, 8, seed=7))

    def pooled(strength, g):
        params = GuidanceParams(strength=strength)
        return ConditioningGuide(params, (part,), pooled_image, g).apply_pooled(vector)

    torch.testing.assert_close(pooled(0.5, 0.8), pooled(1.0, 0.4))
    torch.testing.assert_close(pooled(2.0, 0.8), pooled(1.0, 1.0))  # at most the image's
    assert torch.equal(pooled(0.0, 1.0), vector)
    assert torch.equal(
        pooled(1.0, 0.3),
        ConditioningGuide(GuidanceParams(), (part,), pooled_image, 0.3).apply_pooled(vector),
    )


def test_strength_zero_turns_pure_image_guidance_off():
    text, image = random_tokens(77, 8, seed=1), random_tokens(80, 8, seed=2)
    part = PartGuide(0, image)
    assert torch.equal(
        ConditioningGuide(GuidanceParams(strength=0), (part,)).apply(text, pure=True), text
    )
    assert not torch.equal(
        ConditioningGuide(GuidanceParams(strength=0.1), (part,)).apply(text, pure=True), text
    )


# --- the automatic threshold floor ----------------------------------------------------------


def test_the_automatic_floor_is_inclusive_per_chunk():
    score = torch.tensor([[0.0, 0.25, 0.5, 0.25], [0.5, 0.5, 0.5, 0.5]])
    floor = score.mean(dim=-1, keepdim=True)  # 0.25 and 0.5
    assert threshold_weights(1.0, floor, score).tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]


@pytest.mark.slow
@settings(max_examples=60)
@given(inputs=guidance_inputs(), params=guidance_params)
def test_auto_floor_matches_oracle_and_the_preview_shows_it(inputs, params):
    text, image, concepts = inputs
    text = text.reshape(-1, text.shape[-1])  # one prompt, one or two chunks
    params = params.replace(auto_floor=True)
    expected = oracle_guide(text, image, params, concepts)
    torch.testing.assert_close(guide(text, image, params, concepts), expected, atol=1e-5, rtol=1e-5)
    reports = explain(text, image, params, concepts)
    chunks = text.reshape(-1, CHUNK, text.shape[-1])
    taken = assign(alignment(chunks, image), reuse=params.reuse, order=params.order)
    for chunk, scores in enumerate(taken.score.tolist()):
        floors = {r.floor for r in reports if r.chunk == chunk}
        assert len(floors) == 1
        assert floors.pop() == pytest.approx(math.fsum(scores) / K, rel=1e-5, abs=1e-9)


def test_the_preview_shows_the_set_floor_when_not_automatic():
    text, image = random_tokens(154, 8, seed=1), random_tokens(40, 8, seed=2)
    reports = explain(text, image, GuidanceParams(threshold_floor=0.3))
    assert len(reports) == 152
    assert all(r.floor == pytest.approx(0.3) for r in reports)


def test_auto_floor_replaces_the_set_floor():
    text, image = random_tokens(77, 16, seed=8), random_tokens(100, 16, seed=9)
    params = GuidanceParams(linear=0, clustered=0, threshold_mult=0.5, max_guidance=1)
    auto = params.replace(auto_floor=True)
    reports = explain(text, image, auto)
    floor = reports[0].floor
    assert 0 < floor < 1
    for report in reports:
        assert (report.weight != 0) == (report.alignment >= floor)
    for set_floor in (0.0, 1.0):  # the slider's value no longer matters
        assert torch.equal(
            guide(text, image, auto.replace(threshold_floor=set_floor)), guide(text, image, auto)
        )


def test_strength_and_auto_floor_never_sync_with_the_host():
    """On meta tensors (no data), with the finiteness check (the one read) off."""
    text, image = random_tokens(2, 154, 16, seed=1), random_tokens(50, 16, seed=2)
    concepts = random_tokens(77, 16, seed=3).to("meta")
    params = GuidanceParams(auto_floor=True, strength=0.5, threshold_mult=-0.5)
    out = guide(text.to("meta"), image.to("meta"), params, concepts, check_finite=False)
    assert out.device.type == "meta"
    assert out.shape == text.shape
