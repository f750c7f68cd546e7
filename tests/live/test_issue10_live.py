"""Issue 10's defects as a real A1111 shows them: each test asserts the FIXED behaviour.

Each test was a strict xfail until its fix landed; now they guard the fixes.
Defects that need something this host cannot give (another extension replacing ``p.sample``,
the SDXL refiner, the preview button, memory use) are tested in the fake host.

Jobs are the live suite's usual 64x64, 2 steps, fixed seed (see ``WebuiClient.job``).
"""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from tests.live.conftest import error_message, first_pixels, info, ok, xyz_script_args

# A1111's infotext of a job like WebuiClient.job's. No "Version:": A1111 1.7 reads an older
# version as "Downcast alphas_cumprod" and keeps that override for every later job (an
# override of a setting not yet in its config is never restored).
BASE_INFOTEXT = (
    "a photo of a deer in a dark forest\n"
    "Steps: 2, Sampler: Euler, CFG scale: 7.0, Seed: 7, Size: 64x64"
)


def same_pixels(a, b) -> bool:
    return np.array_equal(first_pixels(a), first_pixels(b))


# ----------------------------------------------------------------- defect 1: X/Y/Z plot


@pytest.mark.parametrize(
    ("guidance", "message"),
    [(None, "FlexDiffuse is off"), ([True], "no guidance image")],
    ids=["off", "no-image"],
)
def test_xyz_refuses_a_flexdiffuse_axis_that_would_fail_every_cell(webui, guidance, message):
    grid = xyz_script_args(webui, "[FlexDiffuse] Linear", "0.1, 0.9")
    failed = webui.job(guidance=guidance, script_name="x/y/z plot", script_args=grid)
    assert failed.status == 500, f"HTTP {failed.status}: the grid ran instead of stopping"
    assert failed.body["error"] == "FlexDiffuseError"
    assert message in error_message(failed.body)


def test_xyz_error_of_one_cell_reaches_the_client(webui, guidance_image):
    # Guidance end 0.0 leaves no step to guide (start is 0): that cell alone is invalid.
    grid = xyz_script_args(webui, "[FlexDiffuse] Guidance end", "1.0, 0.0")
    reply = webui.job(
        guidance=[{"image": guidance_image}], script_name="x/y/z plot", script_args=grid
    )
    said = {k: v for k, v in reply.body.items() if k not in ("images", "parameters")}
    assert "must be below" in json.dumps(said), f"HTTP {reply.status}: {said}"


# ----------------------------------------------------------------- defect 2: weights


@pytest.mark.parametrize(
    "settings",
    [{"image_weight": 0}, {"linear": 0, "clustered": 0, "threshold_mult": 0}],
    ids=["image-1-weight-0", "method-weights-0"],
)
def test_settings_that_guide_nothing_do_not_claim_guidance(webui, guidance_image, settings):
    plain = ok(webui.job())
    body = ok(webui.job(guidance=[{"image": guidance_image, **settings}]))
    assert same_pixels(plain, body)
    assert "FlexDiffuse: True" not in info(body)["infotexts"][0]


# ----------------------------------------------------------------- defect 5: PNG Info


def test_png_info_of_an_unguided_image_has_no_flexdiffuse_key(webui):
    body = ok(webui.job())
    parsed = ok(webui.post("/sdapi/v1/png-info", {"image": body["images"][0]}))["parameters"]
    assert [key for key in parsed if key.startswith("FlexDiffuse")] == []


# ----------------------------------------------------------------- defect 7: infotext field


@pytest.fixture(scope="module")
def infotext_field(webui) -> None:
    """Skip unless the webui's txt2img request takes ``infotext`` (A1111 1.8.0-RC on; the
    kit's c8a5322d has it)."""
    schema = ok(webui.get("/openapi.json"))
    body = schema["paths"]["/sdapi/v1/txt2img"]["post"]["requestBody"]
    name = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    if "infotext" not in schema["components"]["schemas"][name]["properties"]:
        pytest.skip("this webui's txt2img request has no 'infotext' field (A1111 before 1.8)")
    plain = webui.job(infotext=BASE_INFOTEXT)
    if plain.status != 200:  # Forge main (dfdcbab): isinstance() with list[str] in apply_infotext
        pytest.skip(f"this webui fails every request with 'infotext': {plain.body}")


def test_infotext_field_sets_flexdiffuse_values(webui, guidance_image, infotext_field):
    """The path defect 7's tests use works for a number, and reuse changes these pixels."""
    explicit = ok(
        webui.job(guidance=[{"image": guidance_image, "linear": 0.9}], infotext=BASE_INFOTEXT)
    )
    pasted = ok(
        webui.job(
            guidance=[True, guidance_image],
            infotext=BASE_INFOTEXT + ", FlexDiffuse: True, FlexDiffuse linear: 0.9",
        )
    )
    assert same_pixels(explicit, pasted)
    assert "FlexDiffuse linear: 0.9" in info(pasted)["infotexts"][0]
    reuse_off = ok(webui.job(guidance=[{"image": guidance_image, "reuse": False}]))
    assert not same_pixels(ok(webui.job(guidance=[{"image": guidance_image}])), reuse_off)


def test_infotext_field_turns_reuse_off(webui, guidance_image, infotext_field):
    on = ok(webui.job(guidance=[{"image": guidance_image, "reuse": True}], infotext=BASE_INFOTEXT))
    off = ok(
        webui.job(guidance=[{"image": guidance_image, "reuse": False}], infotext=BASE_INFOTEXT)
    )
    pasted = ok(
        webui.job(
            guidance=[True, guidance_image],
            infotext=BASE_INFOTEXT + ", FlexDiffuse: True, FlexDiffuse reuse: False",
        )
    )
    assert same_pixels(pasted, off)
    assert not same_pixels(pasted, on)


def test_infotext_field_keeps_flexdiffuse_off(webui, infotext_field):
    plain = ok(webui.job(infotext=BASE_INFOTEXT))
    pasted = ok(webui.job(infotext=BASE_INFOTEXT + ", FlexDiffuse: False"))
    assert same_pixels(plain, pasted)
    assert "FlexDiffuse: True" not in info(pasted)["infotexts"][0]


# ----------------------------------------------------------------- defect 9: 16-bit PNG


def test_a_dark_16_bit_png_guides_like_its_8_bit_twin(webui, guidance_image):
    from PIL import Image

    from tests.live.conftest import image_base64

    with Image.open(io.BytesIO(base64.b64decode(guidance_image))) as image:
        dark = np.asarray(image.convert("L")) // 3  # mean about 34 of 255
    eight = image_base64(Image.fromarray(dark, "L"))
    sixteen = image_base64(Image.fromarray(dark.astype(np.uint16) * 257))  # the same levels
    plain = first_pixels(ok(webui.job())).astype(float)
    guided = [
        first_pixels(ok(webui.job(guidance=[{"image": image}]))).astype(float)
        for image in (eight, sixteen)
    ]
    assert np.abs(guided[0] - plain).mean() > 1  # the 8-bit image guides at all
    assert np.abs(guided[0] - guided[1]).mean() < 1


# ----------------------------------------------------------------- defect 10: messages


def test_pure_image_guidance_warning_reaches_the_api_client(webui, guidance_image):
    body = ok(webui.job(guidance=[{"image": guidance_image}], prompt=""))
    assert "pure image guidance" in body["info"].lower()


@pytest.fixture
def restore_tower_setting(webui):
    """Put the ViT-L setting back: A1111 1.7 keeps a job's override of a setting that is not
    in its config yet."""
    from flexdiffuse.webui.families import VIT_L

    before = ok(webui.get("/sdapi/v1/options")).get(VIT_L.setting, VIT_L.default_source)
    yield VIT_L.setting
    ok(webui.post("/sdapi/v1/options", {VIT_L.setting: before}))


def test_a_tower_that_cannot_load_answers_flexdiffuse_error(
    webui, guidance_image, restore_tower_setting
):
    missing = "/nonexistent/flexdiffuse-live-test/vit-l"
    failed = webui.job(
        guidance=[{"image": guidance_image}],
        override_settings={restore_tower_setting: missing},
    )
    assert failed.status == 500, failed.body
    assert failed.body["error"] == "FlexDiffuseError", failed.body
    ok(webui.job(guidance=[{"image": guidance_image}]))


def test_a_data_url_without_base64_is_accepted_or_named(webui, guidance_image):
    reply = webui.job(guidance=[{"image": "data:image/png," + guidance_image}])
    if reply.status == 200:
        return  # accepted: the payload is base64 all the same
    assert reply.body["error"] == "FlexDiffuseError", reply.body
    assert "not valid base64" not in error_message(reply.body)
    assert ";base64" in error_message(reply.body)


# ----------------------------------------------------------------- Version


def test_a_guided_infotext_records_the_flexdiffuse_version(webui, guidance_image):
    body = ok(webui.job(guidance=[{"image": guidance_image}]))
    assert "FlexDiffuse version: " in info(body)["infotexts"][0]
