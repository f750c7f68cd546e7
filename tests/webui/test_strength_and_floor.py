"""The image strength and the automatic threshold floor through the panel, API, infotext and
X/Y/Z plot, in the fake host."""

from __future__ import annotations

import copy

import pytest
import torch
from modules import processing, shared
from modules.infotext_utils import paste_values

from flexdiffuse import GuidanceParams, ImageEncoder, guide
from flexdiffuse.params import JobParams
from flexdiffuse.preview import explain
from flexdiffuse.webui.args import ARG_NAMES, parse_script_args
from flexdiffuse.webui.infotext import PASTE_READERS
from tests.webui.conftest import gradient
from tests.webui.test_preview_panel import click_preview
from tests.webui.test_xyz import axis, xyz_grid  # noqa: F401 (the fixture)

IMAGE = gradient()


@pytest.fixture
def tokens(tiny_towers) -> torch.Tensor:
    return ImageEncoder.from_pretrained(tiny_towers["vit_l"])(IMAGE)


def test_the_api_names_both(webui):
    request = parse_script_args([{"image": IMAGE, "strength": "0.5", "auto_floor": "on"}])
    assert request.params == JobParams().replace(strength=0.5, auto_floor=True)
    positional = webui.args(image=IMAGE, strength=1.5, auto_floor=True)
    assert parse_script_args(positional).params.guidance == GuidanceParams(
        strength=1.5, auto_floor=True
    )


def test_a_strength_guides_and_is_recorded(webui, tokens):
    plain = webui.txt2img(webui.args(enabled=False), prompt="a red cat", steps=2)
    args = webui.args(image=IMAGE, strength=0.5, auto_floor=True, threshold_mult=0.5)
    guided = webui.txt2img(args, prompt="a red cat", steps=2)
    params = GuidanceParams(strength=0.5, auto_floor=True, threshold_mult=0.5)
    for before, after in zip(plain.cond_steps(), guided.cond_steps(), strict=True):
        torch.testing.assert_close(after, guide(before, tokens, params))
    infotext = guided.processed.infotexts[0]
    assert "FlexDiffuse strength: 0.5" in infotext
    assert "FlexDiffuse auto floor: True" in infotext
    pasted = dict(
        zip(
            PASTE_READERS,
            paste_values(webui.scripts[False].infotext_fields, infotext)[: len(PASTE_READERS)],
            strict=True,
        )
    )
    assert (pasted["strength"], pasted["auto_floor"]) == (0.5, True)


def test_defaults_are_left_out_of_infotext(webui):
    infotext = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1).processed.infotexts
    assert "strength" not in infotext[0]
    assert "auto floor" not in infotext[0]


@pytest.mark.parametrize(
    "job",
    [
        {"prompt": "a cat"},
        {"prompt": "a cat", "concepts": "cat"},  # concepts do not move at strength 0 either
        {"prompt": ""},  # nor does the image replace an empty prompt
        {"prompt": "a cat", "negative_image": IMAGE},
    ],
    ids=["prompt", "concepts", "empty-prompt", "negative-image"],
)
def test_strength_zero_guides_nothing_and_says_so(webui, job):
    values = {k: job.pop(k) for k in ("concepts", "negative_image") if k in job}
    plain = webui.txt2img(webui.args(enabled=False), steps=2, negative_prompt="ugly", **job)
    off = webui.txt2img(
        webui.args(image=IMAGE, strength=0, **values), steps=2, negative_prompt="ugly", **job
    )
    for a, b in zip(plain.p.unet_calls, off.p.unet_calls, strict=True):
        assert torch.equal(a.text_cond, b.text_cond)
        assert torch.equal(a.text_uncond, b.text_uncond)
    infotext = off.processed.infotexts[0]
    assert "FlexDiffuse: False" in infotext
    assert "FlexDiffuse strength: 0.0" in infotext
    assert "Image strength is 0" in infotext
    assert "Image strength is 0" in off.processed.comments


def test_strength_and_auto_floor_are_x_y_z_axes(webui, xyz_grid):  # noqa: F811
    assert axis(xyz_grid, "Image strength").type is float
    assert axis(xyz_grid, "Automatic threshold floor").choices() == ["True", "False"]
    script = webui.scripts[False]
    template = processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * script.args_from + webui.args(image=IMAGE),
        prompt="a cat",
        steps=1,
    )
    cells = {}
    for value in (0.0, 2.0):
        cell = copy.copy(template)
        cell.extra_generation_params = dict(template.extra_generation_params)
        cell.unet_calls = []
        axis(xyz_grid, "Image strength").apply(cell, value, [0.0, 2.0])
        axis(xyz_grid, "Automatic threshold floor").apply(cell, "True", ["True"])
        cells[value] = processing.process_images(cell).infotexts[0]
    assert "FlexDiffuse strength: 2.0" in cells[2.0]
    assert "FlexDiffuse auto floor: True" in cells[2.0]
    assert "FlexDiffuse: True" in cells[2.0]
    assert "FlexDiffuse: False" in cells[0.0]  # strength 0: the unguided image, reported
    with pytest.raises(Exception, match="from 0 to 2"):
        axis(xyz_grid, "Image strength").confirm(None, [1.0, 2.5])


def test_the_preview_shows_the_automatic_floor_of_each_chunk(webui, tokens):
    prompt = "a red cat " + " ".join(f"word{i}" for i in range(90))  # two chunks
    args = webui.args(image=IMAGE, auto_floor=True, strength=0.5)
    page = click_preview(webui, prompt, args)
    text = shared.sd_model.get_learned_conditioning([prompt])[0]
    reports = explain(text, tokens, GuidanceParams(auto_floor=True, strength=0.5))
    floors = [next(r.floor for r in reports if r.chunk == c) for c in (0, 1)]
    assert floors[0] != floors[1]
    expected = f"{floors[0]:.4f} (chunk 1), {floors[1]:.4f} (chunk 2)"
    assert f"Automatic threshold floor (the mean alignment): {expected}." in page
    assert "Weights include the image strength (0.5)." in page
    plain = click_preview(webui, "a red cat", webui.args(image=IMAGE))
    assert "threshold floor" not in plain
    assert "image strength" not in plain


def test_the_automatic_floor_greys_out_the_floor_slider(webui):
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    auto, floor = controls["auto_floor"], controls["threshold_floor"]
    index, dependency = next(
        (i, d)
        for i, d in enumerate(webui.blocks.dependencies)
        if d["trigger"] == "change" and d["targets"] == [auto._id]
    )
    assert dependency["outputs"] == [floor._id]
    assert webui.blocks.fns[index].fn(True)["interactive"] is False
    assert webui.blocks.fns[index].fn(False)["interactive"] is True
