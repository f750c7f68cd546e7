"""SDXL guided in a real ComfyUI: both towers, one tower, pooled guidance, the example workflow.

The host kit's random SDXL and ViT-bigG/14 are shallow (depth 1, 8 blocks) so that they fit
the test machine; ``comfy_nodes/kit_models`` lets ComfyUI load them (conftest.py). Every job
is the SDXL example workflow (``flexdiffuse-sdxl-both-towers``: ViT-L/14 and ViT-bigG/14,
pooled 0.3) made small (64x64 pixels, 2 steps, fixed seed); pixels are compared within one
server only. An SDXL job takes seconds, so the tests share the jobs they compare (``job``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.live_comfy.jobs import guide_id, pixels, set_guide, unguided
from tests.live_comfy.make_examples import GUIDES, VIT_BIGG


@pytest.fixture(scope="module")
def job(comfy) -> Callable[[dict[str, Any]], np.ndarray]:
    """The pixels of a graph, run once in this module."""
    done: dict[str, np.ndarray] = {}

    def run(prompt: dict[str, Any]) -> np.ndarray:
        key = json.dumps(prompt, sort_keys=True)
        if key not in done:
            done[key] = pixels(comfy, prompt)
        return done[key]

    return run


def loader(prompt: dict[str, Any], clip_name: str) -> list[Any]:
    """The output socket of the graph's Load CLIP Vision node of ``clip_name``."""
    node = next(
        k
        for k, v in prompt.items()
        if v["class_type"] == "CLIPVisionLoader" and v["inputs"]["clip_name"] == clip_name
    )
    return [node, 0]


def test_the_sdxl_example_guided_by_both_towers_differs_from_unguided(job, sdxl):
    assert np.abs(job(sdxl) - job(unguided(sdxl))).mean() > 0.5


def test_sdxl_pooled_guidance_changes_the_pixels_which_repeat_exactly(comfy, job, sdxl):
    assert sdxl[guide_id(sdxl)]["inputs"]["pooled"] > 0  # the example's
    guided = job(sdxl)
    assert np.abs(guided - job(set_guide(sdxl, pooled=0.0))).mean() > 0.5
    assert np.array_equal(pixels(comfy, sdxl), guided)  # run again after another job


def test_sdxl_strength_zero_gives_the_unguided_pixels_pooled_included(job, sdxl):
    assert np.array_equal(job(set_guide(sdxl, strength=0.0)), job(unguided(sdxl)))


def test_sdxl_vit_l_alone_guides_its_half(job, sdxl):
    vit_l = job(set_guide(sdxl, clip_vision_2=None, pooled=0.0))
    assert np.abs(vit_l - job(unguided(sdxl))).mean() > 0.5
    assert np.abs(vit_l - job(set_guide(sdxl, pooled=0.0))).mean() > 0.5  # not the bigG half


def test_sdxl_accepts_vit_bigg_alone_and_it_guides(job, sdxl, names):
    bigg = set_guide(sdxl, clip_vision=loader(sdxl, names[VIT_BIGG]), clip_vision_2=None)
    assert np.abs(job(bigg) - job(unguided(sdxl))).mean() > 0.5


def test_sdxl_pooled_guidance_without_vit_bigg_is_refused_naming_it(comfy, sdxl):
    run = comfy.run(set_guide(sdxl, clip_vision_2=None))  # the example's pooled 0.3, ViT-L only
    assert run.status == "error"
    assert run.error["node_type"] in GUIDES
    assert "ViT-bigG" in run.error["exception_message"]
