"""SDXL guided in a real ComfyUI: both towers, one tower, pooled guidance, the example workflow.

The host kit's random SDXL and ViT-bigG/14 are shallow (depth 1, 8 blocks) so that they fit
the test machine; ``comfy_nodes/kit_models`` lets ComfyUI load them (conftest.py). Every job
is the SDXL example workflow made small (64x64 pixels, 2 steps, fixed seed); pixels are
compared within one server only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.live_comfy.jobs import guide_id, pixels, set_guide, unguided
from tests.live_comfy.make_examples import VIT_BIGG


def loader(prompt: dict[str, Any], clip_name: str) -> list[Any]:
    """The output socket of the graph's Load CLIP Vision node of ``clip_name``."""
    node = next(
        k
        for k, v in prompt.items()
        if v["class_type"] == "CLIPVisionLoader" and v["inputs"]["clip_name"] == clip_name
    )
    return [node, 0]


@pytest.fixture(scope="session")
def plain(comfy, sdxl) -> np.ndarray:
    return pixels(comfy, unguided(sdxl))


def test_sdxl_guided_by_both_towers_differs_from_unguided_and_repeats_exactly(comfy, sdxl, plain):
    guided = pixels(comfy, sdxl)
    assert np.abs(guided - plain).mean() > 0.5
    pixels(comfy, set_guide(sdxl, linear=0.9))  # another run in between
    assert np.array_equal(pixels(comfy, sdxl), guided)


@pytest.mark.parametrize("zero", ["strength", "image_weight"])
def test_sdxl_weight_zero_gives_the_unguided_pixels(comfy, sdxl, plain, zero):
    assert np.array_equal(pixels(comfy, set_guide(sdxl, **{zero: 0.0})), plain)


def test_sdxl_vit_l_alone_guides_its_half(comfy, sdxl, plain):
    both = pixels(comfy, set_guide(sdxl, pooled=0.0))
    vit_l = pixels(comfy, set_guide(sdxl, clip_vision_2=None, pooled=0.0))
    assert np.abs(vit_l - plain).mean() > 0.5
    assert np.abs(vit_l - both).mean() > 0.5  # the bigG half guided too, or not


def test_sdxl_accepts_vit_bigg_alone_and_it_guides(comfy, sdxl, names, plain):
    bigg = set_guide(sdxl, clip_vision=loader(sdxl, names[VIT_BIGG]), clip_vision_2=None)
    assert np.abs(pixels(comfy, bigg) - plain).mean() > 0.5


def test_sdxl_pooled_guidance_changes_the_pixels(comfy, sdxl):
    assert sdxl[guide_id(sdxl)]["inputs"]["pooled"] > 0  # the example's
    without = pixels(comfy, set_guide(sdxl, pooled=0.0))
    assert np.abs(pixels(comfy, sdxl) - without).mean() > 0.5


def test_sdxl_pooled_guidance_without_vit_bigg_is_refused_naming_it(comfy, sdxl):
    run = comfy.run(set_guide(sdxl, clip_vision_2=None))  # the example's pooled 0.3, ViT-L only
    assert run.status == "error"
    assert run.error["node_type"] == "FlexDiffuseGuide"
    assert "ViT-bigG" in run.error["exception_message"]
