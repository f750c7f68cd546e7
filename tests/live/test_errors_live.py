"""Errors and notes through the HTTP API: a bad request stops with FlexDiffuse's clear error
and the webui goes on; settings that guide nothing never claim guidance; warnings reach the
client."""

from __future__ import annotations

import pytest

from tests.live.conftest import error_message, info, ok, same_pixels


@pytest.mark.smoke
@pytest.mark.parametrize(
    ("guidance", "message"),
    [
        ([True], "no guidance image"),
        ([{"image": "bm90IGFuIGltYWdl"}], "could not be read as an image"),
        ([{"image": "not base64!"}], "not valid base64"),
        ([True, None, 3.0], "must be a number from -1 to 1"),
    ],
)
def test_bad_requests_stop_with_a_clear_error_and_the_webui_goes_on(
    webui, guidance_image, guidance, message
):
    failed = webui.job(guidance=guidance)
    assert failed.status == 500
    assert failed.body["error"] == "FlexDiffuseError"
    assert message in error_message(failed.body)
    ok(webui.job(guidance=[{"image": guidance_image}]))


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
