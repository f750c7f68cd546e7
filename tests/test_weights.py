"""Hand-worked examples of the weight rules (docs/algorithm.md §3)."""

from __future__ import annotations

import pytest
import torch

from flexdiffuse.weights import (
    blend,
    clustered_peaks,
    clustered_weights,
    linear_weights,
    threshold_weights,
)


def scores_with(peaks: dict[int, float], base: float = 0.1) -> torch.Tensor:
    s = torch.full((76,), base)
    for k, v in peaks.items():
        s[k] = v
    return s


def test_linear_runs_from_zero_to_the_weight():
    w = linear_weights(0.5, torch.zeros(2, 76))
    assert w.shape == (2, 76)
    assert w[0, 0] == 0
    assert w[0, -1] == pytest.approx(0.5)
    assert w[1, 30] == pytest.approx(0.5 * 30 / 75)


def test_clustered_peaks_valleys_and_slopes():
    s = scores_with({10: 0.9, 20: 0.8})
    w, exists = clustered_weights(0.4, s)
    assert bool(exists)
    expected = torch.zeros(76)
    # Valleys: 0, 10 + ceil(10 / 2) = 15, 75. Peak 10: left slope over 1..9, right to 15.
    for x in range(1, 10):
        expected[x] = 1 - (10 - x) / 10
    expected[10] = 1
    for x in range(11, 16):
        expected[x] = 1 - (x - 10) / 5
    for x in range(16, 20):  # peak 20's left walk stops short of valley 15
        expected[x] = 1 - (20 - x) / 5
    expected[20] = 1
    for x in range(21, 76):
        expected[x] = 1 - (x - 20) / 55
    torch.testing.assert_close(w, 0.4 * expected)


def test_odd_gap_valley_rounds_right():
    s = scores_with({10: 0.9, 13: 0.9})
    w, _ = clustered_weights(1.0, s)
    # Valley 10 + ceil(3 / 2) = 12: 11 falls halfway, 12 is 0, then 13 is a peak again.
    assert w[10:14].tolist() == pytest.approx([1.0, 0.5, 0.0, 1.0])


def test_a_plateau_is_one_peak_at_its_start():
    s = scores_with({30: 0.7, 31: 0.7, 32: 0.7})
    peaks = clustered_peaks(s)
    assert peaks.nonzero().flatten().tolist() == [30]
    w, _ = clustered_weights(1.0, s)
    assert torch.isfinite(w).all()
    assert w[30] == 1
    assert w[31] == pytest.approx(1 - 1 / 45)


def test_edges_are_never_peaks():
    s = scores_with({0: 0.9, 75: 0.9})
    assert not clustered_peaks(s).any()
    _, exists = clustered_weights(0.3, torch.linspace(0, 1, 76))  # rising: no local peak
    assert not exists.any()


def test_flat_scores_are_one_plateau_peaking_at_its_start():
    w, exists = clustered_weights(0.3, torch.full((2, 76), 0.25))
    assert exists.all()
    assert clustered_peaks(torch.full((76,), 0.25)).nonzero().flatten().tolist() == [1]
    torch.testing.assert_close(w[0, :3], torch.tensor([0.0, 0.3, 0.3 * (1 - 1 / 74)]))


def test_peaks_need_the_mean():
    s = scores_with({5: 0.2}, base=0.1)
    s[50:70] = 0.9  # raises the mean (about 0.31) above the bump at 5
    assert clustered_peaks(s).nonzero().flatten().tolist() == [50]


def test_threshold_applies_at_and_above_the_floor():
    s = torch.tensor([0.74, 0.75, 0.9])
    assert threshold_weights(0.25, 0.75, s).tolist() == [0.0, 0.25, 0.25]


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ([0.0, 0.5, 0.2], [0.3, 0.1, 0.0], [0.3, 0.5, 0.2]),  # both reach >= 0: max
        ([0.0, 0.5, 0.2], [-0.3, -0.1, -0.2], [-0.3, 0.4, 0.0]),  # b all negative: sum
        ([-0.1, -0.5, -0.2], [0.3, -0.6, 0.0], [-0.1, -0.6, -0.2]),  # a all negative: min
    ],
)
def test_blend_rules(a, b, expected):
    out = blend(torch.tensor(a), torch.tensor(b))
    torch.testing.assert_close(out, torch.tensor(expected))


def test_blend_decides_per_chunk():
    a = torch.tensor([[0.0, 0.5], [-0.1, -0.5]])
    b = torch.tensor([[0.3, 0.1], [0.3, -0.6]])
    torch.testing.assert_close(blend(a, b), torch.tensor([[0.3, 0.5], [-0.1, -0.6]]))
