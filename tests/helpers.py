"""Small builders shared by tests."""

from __future__ import annotations

import torch


def random_tokens(*shape: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Reproducible normal random tensor."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator).to(dtype)


def near(image: torch.Tensor, text: torch.Tensor, seed: int, noise: float) -> torch.Tensor:
    """Text tokens that are noisy copies of random image tokens, so alignments are high."""
    picks = torch.randint(0, image.shape[0], (text.shape[-2],), generator=_gen(seed))
    return image[picks] + noise * random_tokens(*text.shape, seed=seed + 1)


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)
