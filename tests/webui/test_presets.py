"""The preset menu of the panel and presets named by API clients, in the fake host."""

from __future__ import annotations

import gradio as gr
import pytest
from modules import shared

from flexdiffuse.params import SPECS_BY_NAME, JobParams
from flexdiffuse.presets import PRESET_FIELDS, PRESETS, preset_values
from flexdiffuse.webui import script
from flexdiffuse.webui.args import ARG_NAMES, parse_script_args
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.infotext import control_value
from flexdiffuse.webui.ui import EMPTY_CONCEPTS, PRESET_LABEL
from tests.webui.conftest import gradient

IMAGE = gradient()


def preset_menu(webui, is_img2img=False):
    """The preset dropdown of a tab and its change handler (index into the blocks' fns)."""
    elem_id = webui.scripts[is_img2img].elem_id("preset")
    menu = next(c for c in webui.blocks.blocks.values() if getattr(c, "elem_id", None) == elem_id)
    index, dependency = next(
        (i, d)
        for i, d in enumerate(webui.blocks.dependencies)
        if d["trigger"] == "change" and d["targets"] == [menu._id]
    )
    return menu, dependency, webui.blocks.fns[index]


@pytest.mark.parametrize("is_img2img", [False, True])
def test_the_menu_lists_the_presets_and_is_no_script_argument(webui, is_img2img):
    menu, _, _ = preset_menu(webui, is_img2img)
    assert isinstance(menu, gr.Dropdown)
    assert menu.label == PRESET_LABEL
    assert [c[0] if isinstance(c, tuple) else c for c in menu.choices] == [p.label for p in PRESETS]
    assert menu.value in (None, "", [])
    assert menu.do_not_save_to_config is True  # not an A1111 UI default: an action
    controls = webui.controls[is_img2img]
    assert len(controls) == len(ARG_NAMES)
    assert menu._id not in {c._id for c in controls}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.key)
def test_choosing_a_preset_sets_its_sliders_without_any_model(webui, preset, monkeypatch):
    menu, dependency, fn = preset_menu(webui)
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    concepts = controls["concepts"]
    assert dependency["inputs"] == [menu._id, concepts._id]
    assert dependency["outputs"][:-1] == [controls[name]._id for name in PRESET_FIELDS]
    assert dependency["queue"] is False
    monkeypatch.setattr(shared, "sd_model", None)  # instant: no checkpoint, no vision tower
    monkeypatch.setattr(script.RUNTIME, "towers", None)
    *updates, note = fn.fn(preset.label, "")
    for name, update in zip(PRESET_FIELDS, updates, strict=True):
        assert update["value"] == control_value(SPECS_BY_NAME[name], preset.values[name])
    assert preset.description in note
    assert (EMPTY_CONCEPTS in note) == (preset.key == "concepts")
    assert EMPTY_CONCEPTS not in fn.fn(preset.label, "creepy tree")[-1]


def test_no_preset_changes_nothing(webui):
    _, _, fn = preset_menu(webui)
    assert all(update == gr.update() for update in fn.fn(None, ""))


def test_the_values_a_preset_sets_run_as_a_job(webui):
    values = preset_values("strong")
    job = webui.txt2img(webui.args(image=IMAGE, **values), prompt="a deer", steps=1)
    infotext = job.processed.infotexts[0]
    assert "FlexDiffuse threshold: 1.0" in infotext
    assert "preset" not in infotext.lower()  # the sliders are recorded, not the preset


def test_the_api_names_a_preset_and_explicit_values_win(webui):
    request = parse_script_args([{"image": IMAGE, "preset": "Strong: matches and style"}])
    assert request.params == JobParams().replace(**preset_values("strong"))
    request = parse_script_args([{"image": IMAGE, "preset": "strong", "linear": 0.3}])
    assert request.params == JobParams().replace(**{**preset_values("strong"), "linear": 0.3})
    request = parse_script_args([{"image": IMAGE, "preset": "concepts", "strength": 0.5}])
    assert request.params.guidance.strength == 0.5  # a preset leaves the strength alone
    assert parse_script_args([{"image": IMAGE, "preset": ""}]).params == JobParams()
    job = webui.txt2img([{"image": IMAGE, "preset": "style"}], prompt="a deer", steps=1)
    assert "FlexDiffuse linear: 1.0" in job.processed.infotexts[0]


def test_an_unknown_preset_names_the_presets(webui):
    with pytest.raises(FlexDiffuseError, match="Unknown preset 'loud'; the presets are"):
        webui.txt2img([{"image": IMAGE, "preset": "loud"}], prompt="a cat", steps=1)
    assert not parse_script_args([{"enabled": False, "preset": "loud"}]).enabled


def test_concepts_only_without_concepts_guides_nothing_and_says_so(webui):
    args = webui.args(image=IMAGE, **preset_values("concepts"))
    job = webui.txt2img(args, prompt="a creepy tree creature", steps=1)
    assert "FlexDiffuse: False" in job.processed.infotexts[0]
    assert "neither mapping concepts nor pooled guidance are set" in job.processed.comments
    mapped = webui.txt2img(
        webui.args(image=IMAGE, concepts="creepy tree", **preset_values("concepts")),
        prompt="a creepy tree creature",
        steps=1,
    )
    assert "FlexDiffuse: True" in mapped.processed.infotexts[0]
