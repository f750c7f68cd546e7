"""A recipe per guidance image in the webui: the panel's menus, the API's names, infotext,
X/Y/Z and the preview, all from the parameter specs."""

from __future__ import annotations

import copy

import gradio as gr
import pytest
from modules import processing
from modules.infotext_utils import paste_values

from flexdiffuse.params import RECIPE_LABELS, SPECS_BY_NAME
from flexdiffuse.webui.args import ARG_NAMES, GUIDANCE_INPUTS, parse_script_args
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.ui import IMAGE_RECIPES
from tests.webui.conftest import gradient
from tests.webui.test_panel import paste
from tests.webui.test_preview_panel import click_preview
from tests.webui.test_xyz import axis, xyz_grid  # noqa: F401 (a fixture)

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE, OTHER = gradient(seed=1), gradient(seed=2)
STYLE, STRONG = RECIPE_LABELS["style"], RECIPE_LABELS["strong"]


def rows(webui, **args):
    job = webui.txt2img(webui.args(**args), prompt="a red cat on a sofa", steps=1)
    return job.cond_steps()[0]


def row_of(control, parents):
    """The row that holds ``control`` (gradio puts form controls in a Form inside it)."""
    block = parents.get(control._id)
    while block is not None and not isinstance(block, gr.Row):
        block = parents.get(block._id)
    return block


def test_each_guidance_image_has_a_recipe_menu_beside_its_weight(webui):
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    parents = {
        child._id: block
        for block in webui.blocks.blocks.values()
        for child in getattr(block, "children", [])
    }
    for name in GUIDANCE_INPUTS:
        menu, weight = controls[IMAGE_RECIPES[name]], controls[f"{name}_weight"]
        assert isinstance(menu, gr.Dropdown)
        assert [c[0] if isinstance(c, tuple) else c for c in menu.choices] == list(
            RECIPE_LABELS.values()
        )
        assert menu.value == RECIPE_LABELS["job"] == "Job settings"
        assert row_of(menu, parents) is row_of(weight, parents) is not None


def test_the_default_recipe_guides_exactly_as_before(webui):
    plain = rows(webui, image=IMAGE, image_2=OTHER)
    named = rows(webui, image=IMAGE, image_2=OTHER, image_recipe="job", image_2_recipe="job")
    assert plain.equal(named)


def test_two_images_under_different_recipes_differ_from_each_alone_and_repeat(webui):
    both = {"image": IMAGE, "image_recipe": "strong", "image_2": OTHER, "image_2_recipe": "style"}
    mixed = rows(webui, **both)
    assert mixed.equal(rows(webui, **both))  # exactly, again
    assert not mixed.equal(rows(webui, image=IMAGE, image_recipe="strong"))
    assert not mixed.equal(rows(webui, image=OTHER, image_recipe="style"))
    assert not mixed.equal(rows(webui, image=IMAGE, image_2=OTHER))


def test_the_api_names_recipes_by_key_or_label():
    args = parse_script_args([{"image": IMAGE, "image_2_recipe": "Style only"}])
    assert args.recipe("image_2") == "style"
    assert args.recipe("image") == "job"
    args = parse_script_args([{"image": IMAGE, "image_recipe": "concepts"}])
    assert args.recipe("image") == "concepts"


def test_an_unknown_recipe_is_refused_naming_the_recipes(webui):
    with pytest.raises(FlexDiffuseError, match=r"image_2_recipe \(Image 2 recipe\) must be one"):
        webui.txt2img(
            [{"image": IMAGE, "image_2": OTHER, "image_2_recipe": "watercolour"}],
            prompt="a cat",
            steps=1,
        )


def test_infotext_writes_recipes_off_default_and_pastes_them_back(webui):
    job = webui.txt2img(
        webui.args(image=IMAGE, image_2=OTHER, image_2_recipe="style"), prompt="a cat", steps=1
    )
    infotext = job.processed.infotexts[0]
    assert f"{SPECS_BY_NAME['image_2_recipe'].infotext}: {STYLE}" in infotext
    assert SPECS_BY_NAME["image_recipe"].infotext not in infotext  # "job": omitted
    pasted = paste(webui, infotext)
    assert pasted["image_2_recipe"] == STYLE
    assert pasted["image_recipe"] == RECIPE_LABELS["job"]
    # An infotext from before recipes has none: every image takes the job's settings.
    old = infotext.replace(f", {SPECS_BY_NAME['image_2_recipe'].infotext}: {STYLE}", "")
    assert "recipe" not in old
    assert paste(webui, old)["image_2_recipe"] == RECIPE_LABELS["job"]


def test_send_to_img2img_carries_the_recipes(webui):
    names = webui.scripts[False].paste_field_names
    fields = dict(webui.scripts[False].infotext_fields)
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    for recipe in IMAGE_RECIPES.values():
        assert fields[controls[recipe]] in names
    script = webui.scripts[True]
    job = webui.txt2img(webui.args(image=IMAGE, image_recipe="away"), prompt="a", steps=1)
    values = paste_values(script.infotext_fields, job.processed.infotexts[0])
    img2img = dict(zip(ARG_NAMES, webui.controls[True], strict=True))
    index = [f for f, _ in script.infotext_fields].index(img2img["image_recipe"])
    assert values[index] == RECIPE_LABELS["away"]


def test_xyz_has_an_axis_per_image_recipe_and_cells_use_it(webui, xyz_grid):  # noqa: F811
    for number in ("", " 2", " 3", " 4"):
        assert axis(xyz_grid, f"Image{number} recipe").choices() == list(RECIPE_LABELS.values())
    script = webui.scripts[False]
    template = processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * script.args_from + webui.args(image=IMAGE, image_2=OTHER),
        prompt="a red cat",
        steps=1,
    )
    cells = {}
    for value in (RECIPE_LABELS["job"], STYLE, STRONG):
        cell = copy.copy(template)
        cell.extra_generation_params = dict(template.extra_generation_params)
        cell.unet_calls = []
        axis(xyz_grid, "Image 2 recipe").apply(cell, value, [])
        processed = processing.process_images(cell)
        cells[value] = (processed.infotexts[0], cell.unet_calls[0].text_cond)
    assert f"FlexDiffuse image 2 recipe: {STYLE}" in cells[STYLE][0]
    assert "image 2 recipe" not in cells[RECIPE_LABELS["job"]][0]
    assert not cells[STYLE][1].equal(cells[STRONG][1])
    with pytest.raises(FlexDiffuseError, match="must be one of"):
        axis(xyz_grid, "Image recipe").confirm(None, ["Sepia"])


def test_the_preview_names_the_recipe_that_moved_each_token(webui):
    args = webui.args(image=IMAGE, image_2=OTHER, image_recipe="strong", image_2_recipe="style")
    page = click_preview(webui, "a red cat on a sofa", args)
    assert f"({STRONG})" in page or f"({STYLE})" in page
    plain = click_preview(webui, "a red cat on a sofa", webui.args(image=IMAGE, image_2=OTHER))
    assert "(Job settings)" not in plain


def test_a_recipe_that_moves_tokens_guides_when_the_sliders_move_none(webui):
    still = {"linear": 0.0, "clustered": 0.0, "threshold_mult": 0.0}
    job = webui.txt2img(webui.args(image=IMAGE, **still), prompt="a cat", steps=1)
    assert "FlexDiffuse: False" in job.processed.infotexts[0]  # the job's sliders move nothing
    job = webui.txt2img(
        webui.args(image=IMAGE, image_recipe="strong", **still), prompt="a cat", steps=1
    )
    assert "FlexDiffuse: True" in job.processed.infotexts[0]
