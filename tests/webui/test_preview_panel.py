"""The panel's "Preview mapping" button, in the fake host."""

from __future__ import annotations

import re

import pytest
from modules import shared

from flexdiffuse import GuidanceParams, ImageEncoder
from flexdiffuse.preview import explain
from tests.webui.conftest import gradient, use_checkpoint

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE, OTHER = gradient(seed=1), gradient(seed=2)


def click_preview(webui, prompt, args, is_img2img=False):
    """Run the preview button's handler with the panel's values, as gradio would."""
    controls = webui.controls[is_img2img]
    button = next(
        c
        for c in webui.blocks.blocks.values()
        if getattr(c, "elem_id", "") == webui.scripts[is_img2img].elem_id("preview_button")
    )
    index, dependency = next(
        (i, d)
        for i, d in enumerate(webui.blocks.dependencies)
        if d["trigger"] == "click" and d["targets"] == [button._id]
    )
    prompt_box = webui.prompts[is_img2img]
    assert dependency["inputs"] == [prompt_box._id, *(c._id for c in controls)]
    return webui.blocks.fns[index].fn(prompt, *args)


@pytest.mark.parametrize("is_img2img", [False, True])
def test_preview_shows_every_prompt_token_and_its_image_token(webui, is_img2img):
    page = click_preview(webui, "a red cat", webui.args(enabled=False, image=IMAGE), is_img2img)
    rows = re.findall(r'<tr class="flexdiffuse-position[^"]*"', page)
    assert len(rows) == 4  # a, red, cat, <end>
    for token in ("<td>a</td>", "<td>red</td>", "<td>cat</td>", "&lt;end&gt;"):
        assert token in page
    assert page.count('<figure class="flexdiffuse-image"') == 1
    assert "data:image/png;base64," in page
    assert "image 1, " in page
    assert "Computed in" in page


def test_preview_counts_what_guide_moves(webui, tiny_towers):
    params = GuidanceParams(linear=1.0, max_guidance=1.0)
    page = click_preview(webui, "a red cat", webui.args(image=IMAGE, linear=1.0, max_guidance=1.0))
    text = shared.sd_model.get_learned_conditioning(["a red cat"])[0]
    tokens = ImageEncoder.from_pretrained(tiny_towers["vit_l"])(IMAGE)
    moved = sum(report.moved for report in explain(text, tokens, params))
    assert f"{moved} of 76 prompt positions move" in page
    assert page.count("flexdiffuse-moved") >= 1


def test_rows_carry_the_patch_they_map_to(webui):
    page = click_preview(webui, "a red cat", webui.args(image=IMAGE))
    grid = re.findall(r'data-flexdiffuse-grid="(\d+)"', page)
    assert grid
    assert set(grid) == {"4"}  # the tiny tower: 32 px images, 8 px patches


def test_embeddings_are_named(webui):
    page = click_preview(webui, "a emb:watercolor cat", webui.args(image=IMAGE))
    assert "<td>watercolor</td>" in page
    assert "<td>\u2026</td>" in page


def test_several_images_and_sdxl_towers(webui):
    use_checkpoint("sdxl")
    page = click_preview(webui, "a cat", webui.args(image=IMAGE, image_2=OTHER))
    assert page.count('<figure class="flexdiffuse-image"') == 4  # 2 images x 2 towers
    assert "Vision tower 2 of 2" in page


@pytest.mark.parametrize(
    ("prompt", "args", "message"),
    [
        ("a cat", {"image": None}, "Drop a guidance image"),
        ("a cat", {"image": IMAGE, "linear": 5}, "must be a number from -1 to 1"),
        ("a cat", {"image": IMAGE, "concepts": " ".join(["x"] * 80)}, "must fit in one"),
        ("a cat", {"negative_image": IMAGE}, "Nothing to preview"),
        ("a cat", {"image": IMAGE, "image_weight": 0}, "Nothing to preview"),
    ],
)
def test_preview_explains_what_it_cannot_show(webui, prompt, args, message):
    page = click_preview(webui, prompt, webui.args(**args))
    assert message in page
    assert "<table" not in page


@pytest.mark.parametrize("prompt", ["", "   "])
def test_the_preview_of_an_empty_prompt_shows_the_image_replacing_it(webui, prompt):
    page = click_preview(webui, prompt, webui.args(image=IMAGE))
    assert "pure image guidance" in page
    assert "The prompt is empty: 76 of 76 prompt positions take the image." in page
    assert "<td>image 1, class</td><td>+1.00</td><td>replaced by it (empty prompt)</td>" in page
    assert "toward it" not in page


def test_an_unsupported_checkpoint_is_explained(webui):
    use_checkpoint("sd3")
    page = click_preview(webui, "a cat", webui.args(image=IMAGE))
    assert "flexdiffuse-error" in page
    assert "cannot guide SD 3" in page


def test_the_preview_reads_the_prompt_as_a1111_encodes_it_first(webui):
    page = click_preview(
        webui, "a <lora:ink:0.8> [red:blue:0.5] cat AND a dog", webui.args(image=IMAGE)
    )
    tokens = re.findall(r"<td>([^<]*)</td>", page)
    assert "red" in tokens
    assert "blue" not in tokens
    assert "dog" not in tokens
    assert not any("lora" in token for token in tokens)
