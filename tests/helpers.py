"""Small builders shared by tests."""

from __future__ import annotations

import torch


def random_tokens(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Reproducible normal random tensor."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).to(dtype)
