"""Exact comparisons of float32 tensors with Python-float thresholds.

torch rounds a Python scalar to the tensor's dtype before comparing, so ``score >= 0.9`` really
tests ``score >= float32(0.9)``. These helpers give the answer the exact comparison would give,
so user-set thresholds act exactly as written on every device (float64 is not available
everywhere, e.g. on Apple MPS).
"""

from __future__ import annotations

import numpy as np
import torch


def at_least(values: torch.Tensor, bound: float) -> torch.Tensor:
    """``values >= bound``, exact for float32 ``values`` and any Python float ``bound``."""
    rounded = float(np.float32(bound))
    return values >= rounded if rounded >= bound else values > rounded


def above(values: torch.Tensor, bound: float) -> torch.Tensor:
    """``values > bound``, exact for float32 ``values`` and any Python float ``bound``."""
    rounded = float(np.float32(bound))
    return values >= rounded if rounded > bound else values > rounded
