"""Issue 21 in a real ComfyUI: a recipe and a mask per image slot, saved references.

Small jobs (64x64, 2 steps, fixed seed) on the live host's random-weight SD 1.5 and ViT-L/14,
pixels compared within one server only. The reference this module saves is removed after it.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest

from tests.live_comfy.jobs import example, guide_id, pixels, set_guide
from tests.live_comfy.make_examples import ENCODE, LOAD, SAVE, SIMPLE
from tests.live_comfy.test_comfyui_live import SAVED

REFERENCE_NAME = "flexdiffuse-live-test"


@pytest.fixture(scope="module")
def style_and_subject(object_info, names, style_image) -> dict[str, Any]:
    return example("flexdiffuse-style-and-subject", object_info, names)


def with_nodes(prompt: dict[str, Any], **added: dict[str, Any]) -> dict[str, Any]:
    prompt = copy.deepcopy(prompt)
    prompt.update(copy.deepcopy(added))
    return prompt


def solid(value: float, width: int = 768, height: int = 768) -> dict[str, Any]:
    return {"class_type": "SolidMask", "inputs": {"value": value, "width": width, "height": height}}


def test_two_images_under_different_recipes_differ_from_each_alone_and_repeat(
    comfy, style_and_subject
):
    both = pixels(comfy, style_and_subject)
    guide = style_and_subject[guide_id(style_and_subject)]["inputs"]
    style_alone = set_guide(style_and_subject, image_2=None)
    subject_alone = set_guide(style_and_subject, image=guide["image_2"], image_2=None)
    assert not np.array_equal(both, pixels(comfy, style_alone))
    assert not np.array_equal(both, pixels(comfy, subject_alone))
    same_recipes = set_guide(style_and_subject, image_recipe="Job settings")
    assert not np.array_equal(both, pixels(comfy, same_recipes))
    assert np.array_equal(both, pixels(comfy, style_and_subject))


def test_a_masked_image_differs_and_a_mask_of_the_whole_image_equals_none(comfy, basic):
    """example.png is 768x768: a 768x384 mask takes its left half, a solid 1 all of it."""
    left = with_nodes(
        basic,
        m0=solid(0.0),
        m1=solid(1.0, 384, 768),
        m2={
            "class_type": "MaskComposite",
            "inputs": {"destination": ["m0", 0], "source": ["m1", 0], "x": 0, "y": 0,
                       "operation": "add"},
        },
    )  # fmt: skip
    plain = pixels(comfy, basic)
    masked = pixels(comfy, set_guide(left, image_mask=["m2", 0]))
    assert not np.array_equal(masked, plain)
    whole = with_nodes(basic, m3=solid(1.0))
    assert np.array_equal(pixels(comfy, set_guide(whole, image_mask=["m3", 0])), plain)


def test_an_empty_mask_says_to_paint_it_in_the_mask_editor(comfy, basic):
    """Load Image's mask of an opaque picture is empty: the node says what to do."""
    loader = next(k for k, v in basic.items() if v["class_type"] == "LoadImage")
    run = comfy.run(set_guide(basic, image_mask=[loader, 1]))
    assert run.status == "error"
    assert run.error["node_type"] == SIMPLE
    assert "Mask Editor" in run.error["exception_message"]


@pytest.fixture
def saved_reference(host_dir):
    path = host_dir / "comfyui" / "models" / "FlexDiffuse" / "references"
    yield path / f"{REFERENCE_NAME}.safetensors"
    (path / f"{REFERENCE_NAME}.safetensors").unlink(missing_ok=True)


def test_a_saved_reference_gives_exactly_its_images_pixels_with_no_vision_model(
    comfy, basic, saved_reference
):
    guide = guide_id(basic)
    sockets = basic[guide]["inputs"]
    save = with_nodes(
        {k: v for k, v in basic.items() if v["class_type"] in ("CLIPVisionLoader", "LoadImage")},
        e={
            "class_type": ENCODE,
            "inputs": {"images": sockets["image"], "clip_vision": sockets["clip_vision"],
                       "recipe": "Style only"},
        },
        s={"class_type": SAVE, "inputs": {"reference": ["e", 0], "name": REFERENCE_NAME}},
    )  # fmt: skip
    run = comfy.run(save)
    assert run.status == "success", run.error
    assert saved_reference.is_file()
    assert REFERENCE_NAME in run.outputs("s")["text"][0]
    from_images = pixels(comfy, set_guide(basic, image_recipe="Style only"))
    from_reference = with_nodes(
        basic, r={"class_type": LOAD, "inputs": {"reference": REFERENCE_NAME}}
    )
    from_reference = set_guide(from_reference, image=["r", 0], clip_vision=None)
    for node in [k for k, v in from_reference.items() if v["class_type"] == "CLIPVisionLoader"]:
        del from_reference[node]  # nothing loads a vision model
    assert np.array_equal(pixels(comfy, from_reference), from_images)


@pytest.mark.parametrize("name", ["two-images-and-a-negative", "sd15-advanced"])
def test_a_workflow_saved_before_recipes_gives_its_examples_pixels(comfy, object_info, names, name):
    before = example(f"before-recipes-{name}", object_info, names, SAVED)
    assert np.array_equal(
        pixels(comfy, before), pixels(comfy, example(f"flexdiffuse-{name}", object_info, names))
    )
