"""docs/algorithm.md §3: how strongly each editable position moves toward its image token.

Every function works on the last dimension (the 76 editable positions, index ``k``) and
broadcasts over any leading chunk dimensions.
"""

from __future__ import annotations

import torch

from .compare import at_least


def linear_weights(linear: float, like: torch.Tensor) -> torch.Tensor:
    """``linear * k / (K - 1)``: 0 at the first editable position, ``linear`` at the last."""
    positions = like.shape[-1]
    ramp = torch.linspace(0.0, 1.0, positions, dtype=like.dtype, device=like.device)
    return (linear * ramp).expand(like.shape)


def mean_score(score: torch.Tensor) -> torch.Tensor:
    """The mean alignment score of each chunk ``[..., 1]``, unassigned positions counting 0.

    The clustered peaks' threshold (docs/algorithm.md §3) and the automatic threshold floor
    (§15): the original's "average similarity", one statistic for both.
    """
    return score.mean(dim=-1, keepdim=True)


def clustered_peaks(score: torch.Tensor) -> torch.Tensor:
    """Boolean ``[..., K]`` mask of the peaks of the alignment score.

    A peak is a position in ``1..K-2`` at or above the mean score and at least as high as
    both neighbours. Of a run of such positions (a plateau) only the first counts; the
    original counted every one and divided by zero.
    """
    left, centre, right = score[..., :-2], score[..., 1:-1], score[..., 2:]
    theta = mean_score(score)
    candidate = (centre >= theta) & (left <= centre) & (centre >= right)
    first_of_run = candidate.clone()
    first_of_run[..., 1:] &= ~candidate[..., :-1]
    edge = torch.zeros_like(candidate[..., :1])
    return torch.cat([edge, first_of_run, edge], dim=-1)


def clustered_weights(clustered: float, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Clustered weights and a per-chunk flag telling whether they exist (any peak).

    Peaks get ``clustered``; valleys (position 0, the midpoints between consecutive peaks
    rounded right, and the last position) get 0; positions between fall linearly.
    """
    peaks = clustered_peaks(score)
    last = score.shape[-1] - 1
    k = torch.arange(last + 1, device=score.device).expand(score.shape)
    # Nearest peak at or left of k, and at or right of k (-1 / last+1 when there is none).
    left_peak = torch.where(peaks, k, -1).cummax(dim=-1).values
    right_peak = torch.where(peaks, k, last + 1).flip(-1).cummin(dim=-1).values.flip(-1)
    has_left, has_right = left_peak >= 0, right_peak <= last

    # The valley between two peaks a < b is a + ceil((b - a) / 2); it belongs to a's slope.
    middle = left_peak + torch.div(right_peak - left_peak + 1, 2, rounding_mode="floor")
    owned_by_left_peak = has_left & (~has_right | (k <= middle))
    valley = torch.where(owned_by_left_peak, torch.where(has_right, middle, last), middle)
    valley = torch.where(has_left, valley, 0)
    peak = torch.where(owned_by_left_peak, left_peak, right_peak)

    distance = (k - peak).abs().to(score.dtype)
    span = (valley - peak).abs().clamp(min=1).to(score.dtype)
    weights = torch.where(peaks, 1.0, 1.0 - distance / span)
    weights = torch.where(has_left | has_right, weights, 0.0)
    return clustered * weights, peaks.any(dim=-1, keepdim=True)


def threshold_weights(
    threshold_mult: float, floor: float | torch.Tensor, score: torch.Tensor
) -> torch.Tensor:
    """``threshold_mult`` where the alignment score reaches ``floor``, else 0.

    ``floor`` is the user's number (compared exactly, §14) or a per-chunk tensor ``[..., 1]``
    of the same dtype as ``score`` (the automatic floor, compared as it is).
    """
    reached = score >= floor if isinstance(floor, torch.Tensor) else at_least(score, floor)
    return torch.where(reached, threshold_mult, 0.0).to(score.dtype)


def blend(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Combine two weight vectors by §3's whole-vector rule (the sign of each maximum).

    Both non-negative at their maximum: elementwise max. ``a`` non-negative but ``b``
    entirely negative: their sum. ``a`` entirely negative: elementwise min.
    """
    a_up = a.amax(dim=-1, keepdim=True) >= 0
    b_up = b.amax(dim=-1, keepdim=True) >= 0
    when_a_up = torch.where(b_up, torch.maximum(a, b), a + b)
    return torch.where(a_up, when_a_up, torch.minimum(a, b))


def guidance_weights(
    score: torch.Tensor,
    *,
    linear: float,
    clustered: float,
    threshold_mult: float,
    threshold_floor: float | torch.Tensor,
) -> torch.Tensor:
    """The blended weight of each editable position from its alignment score ``[..., K]``.

    ``threshold_floor`` is a number, or a tensor ``[..., 1]`` of one floor per chunk (see
    :func:`mean_score` for the automatic one).
    """
    weights = linear_weights(linear, score)
    if clustered != 0:
        cluster, has_peaks = clustered_weights(clustered, score)
        weights = torch.where(has_peaks, blend(weights, cluster), weights)
    if threshold_mult != 0:
        weights = blend(weights, threshold_weights(threshold_mult, threshold_floor, score))
    return weights


def weights_can_move(
    *,
    linear: float,
    clustered: float,
    threshold_mult: float,
    max_guidance: float,
    strength: float = 1.0,
) -> bool:
    """Whether :func:`guidance_weights`, capped at ``max_guidance`` and scaled by ``strength``,
    can be non-zero anywhere.

    Strength 0 or all method weights 0 give 0 everywhere. Non-negative ones blend to
    non-negative weights, which a cap of 0 zeroes; a negative one is never capped. Kept beside
    :func:`guidance_weights` so a new method is added to both (a test checks they agree).
    """
    methods = (linear, clustered, threshold_mult)
    if strength == 0 or all(weight == 0 for weight in methods):
        return False
    return max_guidance != 0 or any(weight < 0 for weight in methods)
