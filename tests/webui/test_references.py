"""Saved references in the webui: saved from the panel or the API, picked per image slot, the
same pixels as their images, no tower loaded, recorded in infotext, swept on X/Y/Z, and every
bad file or name refused with what to do."""

from __future__ import annotations

import copy

import pytest
import torch
from fastapi import FastAPI
from fastapi.testclient import TestClient
from modules import processing, script_callbacks
from modules.infotext_utils import parse_generation_parameters
from safetensors.torch import save_file

from flexdiffuse.webui import script
from flexdiffuse.webui.args import ARG_NAMES, NO_REFERENCE, REFERENCE_INPUTS
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.references import (
    ROUTE,
    reference_key,
    references_folder,
    save_from_values,
    saver,
)
from flexdiffuse.webui.vision_towers import VisionTowers
from flexdiffuse.webui.xyz import reference_axis_label
from tests.pickles import plant
from tests.webui.conftest import gradient, use_checkpoint
from tests.webui.test_errors import assert_stops, png_base64
from tests.webui.test_panel import event_fn
from tests.webui.test_reference_masks import left_half
from tests.webui.test_xyz import xyz_grid  # noqa: F401 (fixture)

pytestmark = pytest.mark.every_host

A, B = gradient(seed=1), gradient(56, 40, seed=2)
JOB = {"prompt": "a cat", "steps": 2}


def save(name="pair", **values):
    """Save ``values`` (default: images A and B) as reference ``name`` through the API's
    function; returns its message."""
    values = values or {"image": png_base64(A), "image_2": png_base64(B)}
    return save_from_values(script.RUNTIME, {"name": name, **values})


def no_tower_loads(monkeypatch):
    """From now on, loading any vision tower fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a vision tower was loaded")

    monkeypatch.setattr(script.RUNTIME, "towers", VisionTowers(loader=refuse))


def folder():
    return references_folder(script.RUNTIME.host)


def test_a_reference_job_gives_exactly_its_images_job_and_loads_no_tower(webui, monkeypatch):
    assert "Saved the reference 'pair' (2 images, CLIP ViT-L/14)" in save()
    by_images = webui.txt2img(
        webui.args(image=A, image_2=B, image_weight=0.7, image_2_weight=0.7), **JOB
    )
    no_tower_loads(monkeypatch)
    by_reference = webui.txt2img(webui.args(image_reference="pair", image_weight=0.7), **JOB)
    steps = by_reference.cond_steps()
    assert len(steps) == 2
    for mine, theirs in zip(steps, by_images.cond_steps(), strict=True):
        assert torch.equal(mine, theirs)
    plain = webui.txt2img(webui.args(enabled=False), **JOB)
    assert not torch.equal(steps[0], plain.cond_steps()[0])


def test_a_saved_reference_keeps_the_mask_painted_on_its_image(webui, monkeypatch):
    mask = png_base64(left_half(A.size))
    save("masked", image=png_base64(A), image_mask=mask)
    by_image = webui.txt2img(webui.args(image=A, image_mask=mask), **JOB).cond_steps()[0]
    unmasked = webui.txt2img(webui.args(image=A), **JOB).cond_steps()[0]
    no_tower_loads(monkeypatch)
    by_reference = webui.txt2img(webui.args(image_reference="masked"), **JOB).cond_steps()[0]
    assert torch.equal(by_reference, by_image)
    assert not torch.equal(by_reference, unmasked)


def test_a_slots_reference_replaces_its_image(webui):
    save("a", image=png_base64(A))
    both = webui.txt2img(webui.args(image=A, image_2=B), **JOB)
    mixed = webui.txt2img(webui.args(image=B, image_reference="a", image_2=B), **JOB)
    assert torch.equal(mixed.cond_steps()[0], both.cond_steps()[0])  # slot 1's image unused


def test_a_reference_by_name_in_the_api(webui, monkeypatch):
    save()
    by_images = webui.txt2img([{"image": png_base64(A), "image_2": png_base64(B)}], **JOB)
    no_tower_loads(monkeypatch)
    by_name = webui.txt2img([{"image_2_reference": "pair"}], **JOB)
    assert torch.equal(by_name.cond_steps()[0], by_images.cond_steps()[0])


def test_infotext_records_the_reference_by_name_and_hash(webui):
    save()
    job = webui.txt2img(webui.args(image=A, image_reference="pair"), **JOB)
    params = parse_generation_parameters(job.processed.infotexts[0])
    assert params[reference_key("image")] == "pair"
    assert len(params[reference_key("image") + " hash"]) == 10
    assert "FlexDiffuse image" not in params  # the slot's image did not guide


def paste(webui, infotext):
    """The values pasting ``infotext`` gives the reference menu and note of txt2img."""
    params = parse_generation_parameters(infotext)
    fields = dict(webui.scripts[False].infotext_fields)
    menu = webui.controls[False][ARG_NAMES.index("image_reference")]
    note = next(f for f in fields if f.elem_id == "script_txt2img_flexdiffuse_reference_note")
    return fields[menu](params), fields[note](params)


def test_a_pasted_reference_is_restored_or_said_missing_or_changed(webui):
    save()
    infotext = webui.txt2img(webui.args(image_reference="pair"), **JOB).processed.infotexts[0]
    assert paste(webui, infotext) == ("pair", "")
    save("pair", image=png_base64(B), overwrite=True)
    menu, note = paste(webui, infotext)
    assert menu == "pair"
    assert "saved again since" in note
    assert "the image will differ" in note
    (folder() / "pair.safetensors").unlink()
    menu, note = paste(webui, infotext)
    assert menu == "pair"  # kept, so that the job says what is missing
    assert "'pair'" in note
    assert "not in" in note
    plain = webui.txt2img(webui.args(image=A), **JOB).processed.infotexts[0]
    assert paste(webui, plain) == (NO_REFERENCE, "")


def test_a_missing_reference_stops_the_job_saying_what_to_do(webui):
    message = assert_stops(webui, webui.args(image_reference="nowhere"), "no saved reference")
    assert "'nowhere'" in message
    assert "save it first" in message


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"\x00" * 40, "truncated or corrupt"),
        ("truncated", "truncated or corrupt"),
        ("foreign", "not a FlexDiffuse reference"),
    ],
)
def test_a_bad_reference_file_stops_the_job_with_the_cores_message(webui, content, match):
    save()
    path = folder() / "bad.safetensors"
    if content == "truncated":
        path.write_bytes((folder() / "pair.safetensors").read_bytes()[:-500])
    elif content == "foreign":
        save_file({"weight": torch.zeros(2)}, str(path))
    else:
        path.write_bytes(content)
    assert_stops(webui, webui.args(image_reference="bad"), match)


def test_a_pickle_named_as_a_reference_is_never_unpickled(webui, tmp_path):
    marker = tmp_path / "unpickled"
    plant(folder() / "evil.safetensors", marker)
    assert_stops(webui, webui.args(image_reference="evil"), "cannot be read")
    assert not marker.exists()


def test_a_reference_of_another_tower_is_refused_by_name(webui):
    save()
    use_checkpoint("sd2")
    message = assert_stops(webui, webui.args(image_reference="pair"), "made with CLIP ViT-L/14")
    assert "OpenCLIP ViT-H/14" in message


def test_a_reference_value_that_is_no_name_is_refused(webui):
    assert_stops(webui, [{"image_reference": 3}], "must be the name of a reference")


# ----------------------------------------------------------------------------------- saving


def test_saving_without_an_image_says_what_to_do(webui):
    with pytest.raises(FlexDiffuseError, match="Nothing to save: drop a guidance image"):
        save("empty", image_weight=1)


@pytest.mark.parametrize("name", ["", "../up", "a/b", "None"])
def test_a_bad_name_is_refused(webui, name):
    with pytest.raises(FlexDiffuseError):
        save(name)
    assert not folder().exists() or not list(folder().rglob("*.safetensors"))


def test_an_existing_name_is_kept_unless_overwrite_is_ticked(webui):
    save()
    before = (folder() / "pair.safetensors").read_bytes()
    with pytest.raises(FlexDiffuseError, match="exists already: tick Overwrite"):
        save("pair", image=png_base64(B))
    assert (folder() / "pair.safetensors").read_bytes() == before
    assert "Saved the reference 'pair' (1 image" in save(
        "pair", image=png_base64(B), overwrite=True
    )


def test_a_saved_reference_composes_with_images(webui, monkeypatch):
    save("a", image=png_base64(A))
    save("ab", image_reference="a", image_2=png_base64(B))
    by_images = webui.txt2img(webui.args(image=A, image_2=B), **JOB)
    no_tower_loads(monkeypatch)
    composed = webui.txt2img(webui.args(image_4_reference="ab"), **JOB)
    assert torch.equal(composed.cond_steps()[0], by_images.cond_steps()[0])


def test_a_reference_keeps_its_images_recipes_unless_its_slot_names_one(webui, monkeypatch):
    save("styled", image=png_base64(A), image_recipe="style")
    styled = webui.txt2img(webui.args(image=A, image_recipe="style"), **JOB)
    strong = webui.txt2img(webui.args(image=A, image_recipe="strong"), **JOB)
    no_tower_loads(monkeypatch)
    saved = webui.txt2img(webui.args(image_reference="styled"), **JOB)
    assert torch.equal(saved.cond_steps()[0], styled.cond_steps()[0])
    assert not torch.equal(saved.cond_steps()[0], strong.cond_steps()[0])
    named = webui.txt2img(webui.args(image_reference="styled", image_recipe="strong"), **JOB)
    assert torch.equal(named.cond_steps()[0], strong.cond_steps()[0])


def test_sdxl_saves_both_towers(webui):
    use_checkpoint("sdxl")
    assert "OpenCLIP ViT-bigG/14" in save()


def test_the_panels_save_button_saves_and_refreshes_the_menus(webui):
    panel = webui.scripts[False]
    controls = webui.controls[False]
    menus = [controls[ARG_NAMES.index(name)] for name in REFERENCE_INPUTS.values()]
    status = next(
        b for b in webui.blocks.blocks.values() if b.elem_id == panel.elem_id("reference_status")
    )
    button = next(
        b for b in webui.blocks.blocks.values() if b.elem_id == panel.elem_id("reference_save")
    )
    click = event_fn(webui, "click", button, [status, *menus])
    args = webui.args(image=A)
    message, *updates = click("from panel", False, *args)
    assert "Saved the reference 'from panel'" in message
    assert all("from panel" in update["choices"] for update in updates)
    again, *_ = click("from panel", False, *args)
    assert again.startswith("**Not saved: A reference named 'from panel' exists already")
    assert "Not saved: Nothing to save" in click("x", False, *webui.args(image=None))[0]


def test_each_menu_has_the_hosts_refresh_button(webui):
    save()
    controls = webui.controls[False]
    for name in REFERENCE_INPUTS.values():
        menu = controls[ARG_NAMES.index(name)]
        assert menu.value == NO_REFERENCE
        refresh = next(
            b
            for b in webui.blocks.blocks.values()
            if b.elem_id == webui.scripts[False].elem_id(f"{name}_refresh")
        )
        update = event_fn(webui, "click", refresh, [menu])()
        assert update["choices"] == [NO_REFERENCE, "pair"]


def test_saved_preview_shows_a_reference_slot(webui):
    save()
    from flexdiffuse.webui.preview import preview_from_panel

    shown = preview_from_panel(script.RUNTIME, "a cat", *webui.args(image_reference="pair"))
    assert "flexdiffuse-error" not in shown
    assert "image 2" in shown  # both images of the reference are pictured


# -------------------------------------------------------------------------------------- API


def test_the_api_route_lists_and_saves(webui):
    app = FastAPI()
    script_callbacks.app_started_callback(None, app)
    client = TestClient(app)
    assert client.get(ROUTE).json() == {"references": []}
    reply = client.post(ROUTE, json={"name": "api", "image": png_base64(A)})
    assert reply.status_code == 200, reply.text
    assert reply.json()["references"] == ["api"]
    bad = client.post(ROUTE, json={"name": "api", "image": png_base64(A)})
    assert bad.status_code == 400
    assert "exists already" in bad.json()["detail"]
    assert "Name the reference" in client.post(ROUTE, json={"image": "x"}).json()["detail"]


# ------------------------------------------------------------------------------------ X/Y/Z


def test_an_xyz_axis_sweeps_saved_references(webui, xyz_grid):  # noqa: F811
    save("a", image=png_base64(A))
    save("b", image=png_base64(B))
    axis = next(o for o in xyz_grid.axis_options if o.label == reference_axis_label("image"))
    assert axis.choices() == ["a", "b"]
    template = processing.StableDiffusionProcessingTxt2Img(
        scripts=webui.runners[False],
        script_args=[None] * webui.scripts[False].args_from + webui.args(image=None),
        **JOB,
    )
    axis.confirm(template, ["a", "b"])
    cells = {}
    for value in ("a", "b"):
        cell = copy.copy(template)
        cell.extra_generation_params = dict(template.extra_generation_params)
        cell.unet_calls = []
        axis.apply(cell, value, ["a", "b"])
        processed = processing.process_images(cell)
        cells[value] = (processed.infotexts[0], cell.unet_calls[0].text_cond)
    assert f"{reference_key('image')}: a," in cells["a"][0]
    assert f"{reference_key('image')}: b," in cells["b"][0]
    assert not torch.equal(cells["a"][1], cells["b"][1])
    with pytest.raises(FlexDiffuseError, match="no saved reference 'c'"):
        axis.confirm(template, ["a", "c"])
    with pytest.raises(FlexDiffuseError, match="no guidance image"):
        axis.confirm(template, ["a", NO_REFERENCE])


def test_the_saver_reports_errors_as_text(webui):
    assert saver(script.RUNTIME)("", False, *webui.args(image=A)).startswith("**Not saved:")
