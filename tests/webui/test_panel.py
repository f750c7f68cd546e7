"""The panel: generated from the parameter specs, restored from infotext, described to the API."""

from __future__ import annotations

import gradio as gr
import pytest
from modules import script_callbacks
from modules.infotext_utils import (
    UNCHANGED,
    api_infotext_values,
    parse_generation_parameters,
    paste_values,
)
from modules.ui_components import InputAccordion

from flexdiffuse.params import PARAM_SPECS, JobParams, format_value
from flexdiffuse.webui.args import ARG_NAMES, IMAGE_INPUTS
from flexdiffuse.webui.infotext import PASTE_READERS, image_key
from flexdiffuse.webui.mask_panel import MASK_NOTE
from flexdiffuse.webui.ui import MENU_FROM, PRIORITY_HINT
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


def hint_after(webui, control) -> str | None:
    """The text of the Markdown drawn right after ``control`` in the page (None: none)."""
    blocks = list(webui.blocks.blocks.values())
    following = blocks[blocks.index(control) + 1]
    return following.value if isinstance(following, gr.Markdown) else None


@pytest.mark.parametrize("spec", PARAM_SPECS, ids=lambda s: s.name)
def test_controls_follow_the_specs(webui, spec):
    control = webui.controls[False][ARG_NAMES.index(spec.name)]
    default = spec.default
    assert control.label == spec.label
    if spec.kind != "bool":
        assert control.info == (PRIORITY_HINT if spec.name == "order" else spec.info)
    if spec.kind == "float":
        assert isinstance(control, gr.Slider)
        assert (control.minimum, control.maximum, control.value) == (
            spec.minimum,
            spec.maximum,
            default,
        )
    elif spec.kind == "choice":
        # A long choice (an image's recipe) is a menu; a short one radio buttons.
        long = len(spec.choices) >= MENU_FROM
        assert isinstance(control, gr.Dropdown if long else gr.Radio)
        assert [c[0] if isinstance(c, tuple) else c for c in control.choices] == list(
            spec.choices.values()
        )
        assert control.value == format_value(spec, default)
    elif spec.kind == "bool":
        assert isinstance(control, gr.Checkbox)
        assert control.value is default
        assert not control.info  # gradio would draw it above the box
        assert hint_after(webui, control) == spec.info
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


def paste(webui, infotext, is_img2img=False, via=paste_values):
    """Control values by argument name after pasting ``infotext`` (UNCHANGED: left alone)."""
    script = webui.scripts[is_img2img]
    values = via(script.infotext_fields, infotext)[: len(PASTE_READERS)]
    return dict(zip(PASTE_READERS, values, strict=True))


def sent_values(args):
    """The pasteable controls' values in script arguments ``args``, by argument name."""
    return {
        name: value for name, value in zip(ARG_NAMES, args, strict=True) if name in PASTE_READERS
    }


def test_infotext_round_trip_restores_every_control(webui):
    params = JobParams().replace(
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
    args = webui.args(image=IMAGE, **{s.name: params.get(s.name) for s in PARAM_SPECS})
    job = webui.txt2img(args, prompt="a cat", steps=1)
    infotext = job.processed.infotexts[0]
    assert f"{image_key('image')}: " in infotext
    assert set(PASTE_READERS) == {"enabled", *(s.name for s in PARAM_SPECS)}  # no images
    assert paste(webui, infotext) == sent_values(args)
    assert paste(webui, infotext, via=api_infotext_values) == sent_values(args)


def test_defaults_missing_from_infotext_are_restored_too(webui):
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert "concepts" not in job.processed.infotexts[0]  # empty: not written
    webui_values = paste(webui, job.processed.infotexts[0])
    assert webui_values["concepts"] == ""
    edited = job.processed.infotexts[0].replace("FlexDiffuse linear: 0.5", "FlexDiffuse linear: 9")
    assert paste(webui, edited)["linear"] == 0.5  # out of range: the default


def test_pasting_an_unguided_image_switches_flexdiffuse_off_only(webui):
    job = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1)
    assert "FlexDiffuse" not in job.processed.infotexts[0]
    pasted = paste(webui, job.processed.infotexts[0])
    assert pasted["enabled"] is False
    assert all(value is UNCHANGED for name, value in pasted.items() if name != "enabled")


def test_reading_parameters_writes_nothing_into_them(webui):
    """PNG Info and the API's png-info parse infotext: no FlexDiffuse key may appear."""
    job = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1)
    parsed = parse_generation_parameters(job.processed.infotexts[0])
    script_callbacks.infotext_pasted_callback(job.processed.infotexts[0], parsed)
    paste(webui, job.processed.infotexts[0])
    assert not [key for key in parsed if key.startswith("FlexDiffuse")]


@pytest.mark.parametrize("via", [paste_values, api_infotext_values])
def test_booleans_from_infotext_read_as_booleans(webui, via):
    job = webui.txt2img(webui.args(image=IMAGE, reuse=False), prompt="a cat", steps=1)
    infotext = job.processed.infotexts[0]
    assert "FlexDiffuse reuse: False" in infotext
    assert paste(webui, infotext, via=via)["reuse"] is False
    off = infotext.replace("FlexDiffuse: True", "FlexDiffuse: False")
    assert paste(webui, off, via=via)["enabled"] is False


def test_send_to_img2img_copies_every_control_by_name(webui):
    txt2img, img2img = webui.scripts[False], webui.scripts[True]
    assert [key for _, key in txt2img.infotext_fields][: len(PASTE_READERS)] == list(
        PASTE_READERS.values()
    )
    names = txt2img.paste_field_names
    copied = [field for field, key in txt2img.infotext_fields if key in names]
    note = txt2img.elem_id(MASK_NOTE)  # written from the sent image's infotext instead
    assert copied == [field for field, _ in txt2img.infotext_fields if field.elem_id != note]
    assert [key for _, key in img2img.infotext_fields] == [
        key for _, key in txt2img.infotext_fields
    ]


def test_send_to_img2img_carries_the_images_and_a_paste_leaves_them(webui):
    """ "Send to img2img" copies the fields named in ``paste_field_names`` control to control
    (A1111's ``connect_paste_params_buttons``): the images must be among them, or the
    img2img panel is switched on without its image. A paste from PNG Info has no image (a
    hash does not give it back): the panel keeps the images it has."""
    txt2img, img2img = webui.scripts[False], webui.scripts[True]
    names = txt2img.paste_field_names
    sources = [field for field, key in txt2img.infotext_fields if key in names]
    targets = [field for field, key in img2img.infotext_fields if key in names]
    for name in IMAGE_INPUTS:
        index = ARG_NAMES.index(name)
        source, target = webui.controls[False][index], webui.controls[True][index]
        assert source in sources, name
        assert targets[sources.index(source)] is target, name
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    values = paste_values(img2img.infotext_fields, job.processed.infotexts[0])
    controls = [field for field, _ in img2img.infotext_fields]
    for name in IMAGE_INPUTS:
        assert values[controls.index(webui.controls[True][ARG_NAMES.index(name)])] is UNCHANGED


def test_api_script_info_describes_every_argument(webui):
    # A1111 builds /sdapi/v1/script-info from these attributes of the ui() controls.
    controls = webui.controls[False]
    for name, control in zip(ARG_NAMES, controls, strict=True):
        assert control.label, name
    sliders = [c for c in controls if isinstance(c, gr.Slider)]
    assert all(None not in (c.minimum, c.maximum, c.step, c.value) for c in sliders)


def event_fn(webui, trigger, source, outputs):
    """The handler of ``source``'s ``trigger`` event that updates ``outputs``."""
    for index, dependency in enumerate(webui.blocks.dependencies):
        if (
            dependency["trigger"] == trigger
            and dependency["targets"] == [source._id]
            and dependency["outputs"] == [o._id for o in outputs]
        ):
            return webui.blocks.fns[index].fn
    raise AssertionError(f"no {trigger} handler of {source} for {outputs}")


def test_mapping_priority_acts_only_with_reuse_off(webui):
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    reuse, order = controls["reuse"], controls["order"]
    assert order.interactive is False  # reuse is on by default
    toggle = event_fn(webui, "change", reuse, [order])
    assert toggle(False)["interactive"] is True
    assert toggle(True)["interactive"] is False
    options = [c for c in webui.blocks.blocks.values() if c in (reuse, order)]
    assert options.index(reuse) < options.index(order)  # the switch comes before its option


def test_the_panel_says_which_image_inputs_hold_an_image(webui):
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    note = next(
        c
        for c in webui.blocks.blocks.values()
        if getattr(c, "elem_id", None) == webui.scripts[False].elem_id("images_note")
    )
    update = event_fn(webui, "change", controls["image_3"], [note])
    assert update(None, None, None, None, None) == ""
    assert "guidance image 3" in update(IMAGE, None, IMAGE, None, None)
    assert "negative image" in update(None, None, None, None, IMAGE)
