"""CLIP vision towers through ComfyUI's own loader and preprocessing, in a real ComfyUI.

The random ViT-H/14 is full size (``random_towers.py``): ComfyUI knows a tower by its depth and
widths, so a shallow one would not test its loader. Jobs are SD 1.5 at 64x64, 2 steps.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.live_comfy.jobs import pixels, set_guide, unguided
from tests.live_comfy.make_examples import GUIDES

NON_SQUARE = "flexdiffuse-live-zeus.png"


def with_input(prompt: dict[str, Any], class_type: str, **values: Any) -> dict[str, Any]:
    """The graph with these inputs set on its (first) node of ``class_type``."""
    prompt = copy.deepcopy(prompt)
    node = next(v for v in prompt.values() if v["class_type"] == class_type)
    node["inputs"].update(values)
    return prompt


def test_vit_h_loads_with_comfyuis_clip_vision_loader_and_encodes(comfy, vit_h, basic):
    image = next(k for k, v in basic.items() if v["class_type"] == "LoadImage")
    graph = {
        "1": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": vit_h}},
        "2": {"class_type": "LoadImage", "inputs": basic[image]["inputs"]},
        "3": {
            "class_type": "CLIPVisionEncode",
            "inputs": {"clip_vision": ["1", 0], "image": ["2", 0], "crop": "center"},
        },
        "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}},
    }
    run = comfy.run(graph)
    assert run.status == "success", run.error


def test_vit_h_on_sd15_is_refused_by_the_node_naming_the_vit_l_tower(comfy, vit_h, basic):
    run = comfy.run(with_input(basic, "CLIPVisionLoader", clip_name=vit_h))
    assert run.status == "error"
    assert run.error["node_type"] in GUIDES  # the loader took it
    assert "ViT-L/14" in run.error["exception_message"]


@pytest.fixture
def non_square(comfy, testdata) -> str:
    """zeus.webp (512x704) uploaded as it is: ComfyUI crops and resizes it for the tower."""
    picture = Image.open(testdata / "zeus.webp").convert("RGB")
    assert picture.width != picture.height
    return comfy.upload_image(NON_SQUARE, picture)


def test_a_non_square_image_goes_through_comfyuis_crop_and_guides(comfy, basic, non_square):
    zeus = with_input(basic, "LoadImage", image=non_square)
    plain = pixels(comfy, unguided(zeus))
    guided = pixels(comfy, zeus)
    assert np.abs(guided - plain).mean() > 0.5
    assert np.abs(guided - pixels(comfy, basic)).mean() > 0.5  # the picture guides, not a default
    pixels(comfy, set_guide(zeus, linear=0.9))  # another run in between
    assert np.array_equal(pixels(comfy, zeus), guided)
