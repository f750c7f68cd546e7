"""guide() against the loop-by-loop spec oracle, across the whole parameter space."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flexdiffuse import guide
from flexdiffuse.alignment import alignment
from flexdiffuse.assignment import assign
from flexdiffuse.engine import threshold_floor
from flexdiffuse.weights import guidance_weights
from tests.helpers import guidance_inputs, guidance_params, random_tokens
from tests.oracle import CHUNK, oracle_alignment, oracle_assign, oracle_guide, oracle_weights


@pytest.mark.slow
@settings(max_examples=120)
@given(inputs=guidance_inputs(), params=guidance_params)
def test_guide_matches_oracle(inputs, params):
    text, image, concepts = inputs
    expected = oracle_guide(text, image, params, concepts)
    actual = guide(text, image, params, concepts)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=40)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 30), width=st.sampled_from([4, 16]))
def test_alignment_matches_pairwise_definition(seed, n, width):
    text = random_tokens(CHUNK, width, seed=seed)
    image = random_tokens(n, width, seed=seed + 1)
    expected = torch.tensor(oracle_alignment(text, image))
    torch.testing.assert_close(alignment(text, image), expected, rtol=1e-4, atol=1e-6)


@settings(max_examples=150)
@given(
    align=st.integers(1, 90).flatmap(
        lambda n: st.lists(
            st.lists(st.sampled_from([0.0, 0.125, 0.25, 0.5, 0.75, 1.0]), min_size=6, max_size=6),
            min_size=n,
            max_size=n,
        )
    ),
    reuse=st.booleans(),
    order=st.sampled_from(["fit", "text"]),
)
def test_assignment_tie_breaks_match_oracle(align, reuse, order):
    """Coarse values make many exact ties: §2's tie-break order must decide them."""
    expected_index, expected_score = oracle_assign(align, reuse, order)
    taken = assign(torch.tensor(align), reuse=reuse, order=order)
    assert taken.index.tolist() == [-1 if m is None else m for m in expected_index]
    assert taken.score.tolist() == expected_score


@settings(max_examples=300)
@given(
    scores=st.lists(
        st.sampled_from([0.0, 0.125, 0.25, 0.375, 0.5, 0.75, 1.0]), min_size=76, max_size=76
    ),
    params=guidance_params,
)
def test_weights_match_oracle_on_plateaus(scores, params):
    """Dyadic scores give exact plateaus and exact means: peaks, valleys and the automatic
    floor (their mean too) are decided alike."""
    expected = torch.tensor(oracle_weights(scores, params))
    score = torch.tensor(scores)
    actual = guidance_weights(
        score,
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        threshold_floor=threshold_floor(score, params),
    )
    torch.testing.assert_close(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.slow
@settings(max_examples=60)
@given(inputs=guidance_inputs(), params=guidance_params, data=st.data())
def test_token_weights_match_oracle(inputs, params, data):
    text, image, concepts = inputs
    # Powers of two scale float32 and float64 alike, so the engine's float32 weights meet the
    # oracle's float64 ones on the same side of every "take the image token whole" boundary.
    choices = st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0])
    weights = torch.tensor(data.draw(st.lists(choices, min_size=len(image), max_size=len(image))))
    expected = oracle_guide(text, image, params, concepts, token_weights=weights)
    actual = guide(text, image, params, concepts, token_weights=weights)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=30)
@given(inputs=guidance_inputs(), params=guidance_params)
def test_unit_token_weights_are_the_spec_exactly(inputs, params):
    text, image, concepts = inputs
    ones = torch.ones(len(image))
    assert torch.equal(
        guide(text, image, params, concepts, token_weights=ones),
        guide(text, image, params, concepts),
    )
