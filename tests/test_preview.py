"""explain() reports exactly what guide() does at every position."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flexdiffuse import GuidanceParams, guide
from flexdiffuse.preview import explain
from tests.helpers import guidance_inputs, guidance_params


@pytest.mark.slow
@settings(max_examples=80)
@given(inputs=guidance_inputs(), params=guidance_params, weighted=st.booleans())
def test_every_report_matches_the_guided_prompt(inputs, params, weighted):
    text, image, concepts = inputs
    text = text.reshape(-1, *text.shape[-2:])[0]  # one prompt
    weights = None
    if weighted:
        weights = torch.tensor([0.5, 1.0, 2.0])[torch.arange(len(image)) % 3]
    out = guide(text, image, params, concepts, token_weights=weights)
    reports = explain(text, image, params, concepts, token_weights=weights)
    assert len(reports) == text.shape[0] // 77 * 76
    for report in reports:
        row = report.chunk * 77 + report.position
        if not report.moved:
            assert torch.equal(out[row], text[row])
        elif report.whole:
            torch.testing.assert_close(out[row], image[report.image_token])
        else:
            source, target = text[row], image[report.image_token]
            expected = source + (target - source) * report.weight
            torch.testing.assert_close(out[row], expected, rtol=1e-4, atol=1e-5)
        if report.moved:
            assert 0 <= report.alignment <= 1


def test_no_weights_and_no_concepts_report_nothing_moved():
    text, image = torch.randn(77, 8), torch.randn(20, 8)
    params = GuidanceParams(linear=0, clustered=0, threshold_mult=0)
    assert not any(report.moved for report in explain(text, image, params))
