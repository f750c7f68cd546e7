"""The node pack against the fake ComfyUI (``tests/fakecomfy``) and tiny CLIP towers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

FAKECOMFY = Path(__file__).resolve().parents[1] / "fakecomfy"
sys.path.insert(0, str(FAKECOMFY))

from comfy import model_management  # noqa: E402
from comfy.clip_vision import ClipVisionModel  # noqa: E402
from comfy.sd import CLIP  # noqa: E402

from tests.conftest import tiny_vision_config  # noqa: E402


def tiny_tower(projection_dim: int, seed: int = 0) -> ClipVisionModel:
    """A CLIP_VISION whose image tokens are ``projection_dim`` wide (768: ViT-L's width)."""
    from transformers import CLIPVisionModelWithProjection

    torch.manual_seed(seed)
    return ClipVisionModel(CLIPVisionModelWithProjection(tiny_vision_config(projection_dim)))


@pytest.fixture(scope="session")
def vit_l() -> ClipVisionModel:
    return tiny_tower(768)


@pytest.fixture(scope="session")
def vit_bigg() -> ClipVisionModel:
    return tiny_tower(1280, seed=1)


@pytest.fixture(scope="session")
def vit_h() -> ClipVisionModel:
    return tiny_tower(1024, seed=2)


@pytest.fixture
def clip_l() -> CLIP:
    return CLIP(768)


@pytest.fixture
def clip_xl() -> CLIP:
    return CLIP(2048, key="g")


def image_batch(count: int = 1, size: int = 32, seed: int = 0) -> torch.Tensor:
    """A ComfyUI IMAGE: ``[count, size, size, 3]`` in 0..1, on 8-bit levels."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, size, size, 3), generator=generator) / 255.0


@pytest.fixture(autouse=True)
def _no_interrupt():
    model_management.interrupt_current_processing(False)
    yield
    model_management.interrupt_current_processing(False)
