"""The panel: generated from the parameter specs, restored from infotext, described to the API."""

from __future__ import annotations

import gradio as gr
import pytest
from modules.infotext_utils import UNCHANGED, paste_values
from modules.ui_components import InputAccordion

from flexdiffuse.params import PARAM_SPECS, GuidanceParams, format_value
from flexdiffuse.webui.args import ARG_NAMES, IMAGE_INPUTS
from flexdiffuse.webui.infotext import ENABLED_KEY, IMAGE_KEY, PANEL_KEYS, image_key
from tests.webui.conftest import gradient

IMAGE = gradient()


def test_both_tabs_get_every_control_with_unique_ids(webui):
    ids = []
    for is_img2img, controls in webui.controls.items():
        tab = "img2img" if is_img2img else "txt2img"
        assert len(controls) == len(ARG_NAMES)
        assert isinstance(controls[0], InputAccordion)
        assert controls[0].value is False  # off by default
        assert controls[0].accordion.open is False  # and closed
        assert isinstance(controls[1], gr.Image)
        for control in controls:
            assert tab in control.elem_id
            ids.append(control.elem_id)
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("spec", PARAM_SPECS, ids=lambda s: s.name)
def test_controls_follow_the_specs(webui, spec):
    control = webui.controls[False][ARG_NAMES.index(spec.name)]
    default = getattr(GuidanceParams(), spec.name)
    assert control.label == spec.label
    assert control.info == spec.info  # every control has a hint
    if spec.kind == "float":
        assert isinstance(control, gr.Slider)
        assert (control.minimum, control.maximum, control.value) == (
            spec.minimum,
            spec.maximum,
            default,
        )
    elif spec.kind == "choice":
        assert isinstance(control, gr.Radio)
        assert [c[0] if isinstance(c, tuple) else c for c in control.choices] == list(
            spec.choices.values()
        )
        assert control.value == format_value(spec, default)
    elif spec.kind == "bool":
        assert isinstance(control, gr.Checkbox)
        assert control.value is default
    else:
        assert isinstance(control, gr.Textbox)
        assert control.value == default


def test_dropping_an_image_switches_flexdiffuse_on(webui):
    enabled, image = webui.controls[False][:2]
    uploads = [
        (i, d)
        for i, d in enumerate(webui.blocks.dependencies)
        if d["trigger"] == "upload" and d["targets"] == [image._id]
    ]
    assert len(uploads) == 1
    index, dependency = uploads[0]
    assert dependency["outputs"] == [enabled._id]
    assert webui.blocks.fns[index].fn() is True


def paste(webui, infotext, is_img2img=False):
    script = webui.scripts[is_img2img]
    values = paste_values(script.infotext_fields, infotext)
    return dict(zip(PANEL_KEYS, values, strict=True))


def test_infotext_round_trip_restores_every_control(webui):
    params = GuidanceParams(
        threshold_mult=-0.3,
        threshold_floor=0.61,
        clustered=0.05,
        linear=0.123456,
        max_guidance=0.2,
        order="text",
        reuse=False,
        concepts='a dog, "sunset": red',
        concept_threshold=0.5,
    )
    values = {name: getattr(params, name) for name in params.__dataclass_fields__}
    args = webui.args(image=IMAGE, **values)
    job = webui.txt2img(args, prompt="a cat", steps=1)
    infotext = job.processed.infotexts[0]
    assert f"{IMAGE_KEY}: " in infotext
    pasted = paste(webui, infotext)
    images = {image_key(slot) for slot in IMAGE_INPUTS}
    assert all(pasted[key] is UNCHANGED for key in images)  # a hash cannot become an image
    restored = {key: value for key, value in pasted.items() if key not in images}
    sent = dict(zip(PANEL_KEYS, args, strict=True))
    assert restored == {key: value for key, value in sent.items() if key not in images}


def test_defaults_missing_from_infotext_are_restored_too(webui):
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert "concepts" not in job.processed.infotexts[0]  # empty: not written
    webui_values = paste(webui, job.processed.infotexts[0])
    assert webui_values["FlexDiffuse concepts"] == ""
    edited = job.processed.infotexts[0].replace("FlexDiffuse linear: 0.5", "FlexDiffuse linear: 9")
    assert paste(webui, edited)["FlexDiffuse linear"] == 0.5  # out of range: the default


def test_pasting_an_unguided_image_switches_flexdiffuse_off_only(webui):
    job = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1)
    assert "FlexDiffuse" not in job.processed.infotexts[0]
    pasted = paste(webui, job.processed.infotexts[0])
    assert pasted[ENABLED_KEY] is False
    assert all(value is UNCHANGED for key, value in pasted.items() if key != ENABLED_KEY)


def test_send_to_img2img_copies_every_control_by_name(webui):
    txt2img, img2img = webui.scripts[False], webui.scripts[True]
    assert [key for _, key in txt2img.infotext_fields] == list(PANEL_KEYS)
    assert [key for _, key in img2img.infotext_fields] == list(PANEL_KEYS)
    assert set(txt2img.paste_field_names) == set(PANEL_KEYS)


def test_api_script_info_describes_every_argument(webui):
    # A1111 builds /sdapi/v1/script-info from these attributes of the ui() controls.
    controls = webui.controls[False]
    for name, control in zip(ARG_NAMES, controls, strict=True):
        assert control.label, name
    sliders = [c for c in controls if isinstance(c, gr.Slider)]
    assert all(None not in (c.minimum, c.maximum, c.step, c.value) for c in sliders)
