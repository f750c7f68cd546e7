"""Saved references on a real webui: saved through FlexDiffuse's route, a job by reference gives
exactly the pixels of the job by its images, infotext names it, and the X/Y/Z axis sweeps it.

Cheap: 64-pixel, 2-step jobs on the running server. The route encodes with the server's own
tower settings, so the test sets them (``/sdapi/v1/options``) to the towers the jobs use, and
puts them back after.
"""

from __future__ import annotations

import pytest

from tests.live.conftest import (
    error_message,
    info,
    ok,
    same_pixels,
    xyz_script_args,
)

ROUTE = "/flexdiffuse/v1/references"
PAIR = "live pair"


@pytest.fixture(scope="module")
def job_towers(webui):
    """The server's tower settings set to the jobs' towers while the module runs."""
    saved = ok(webui.get("/sdapi/v1/options"))
    ok(webui.post("/sdapi/v1/options", webui.settings))
    yield
    ok(webui.post("/sdapi/v1/options", {key: saved.get(key) for key in webui.settings}))


@pytest.fixture(scope="module")
def pair(webui, job_towers, guidance_image, second_image) -> str:
    body = {"name": PAIR, "overwrite": True, "image": guidance_image, "image_2": second_image}
    reply = ok(webui.post(ROUTE, body))
    assert PAIR in reply["references"], reply
    return PAIR


@pytest.mark.smoke
@pytest.mark.every_family
def test_a_job_by_saved_reference_equals_the_job_by_its_images(
    webui, pair, guidance_image, second_image
):
    by_images = ok(webui.job(guidance=[{"image": guidance_image, "image_2": second_image}]))
    by_reference = ok(webui.job(guidance=[{"image_reference": pair}]))
    assert same_pixels(by_images, by_reference)
    infotext = info(by_reference)["infotexts"][0]
    assert f"FlexDiffuse image reference: {pair}," in infotext
    assert "FlexDiffuse image reference hash: " in infotext
    plain = ok(webui.job())
    assert not same_pixels(plain, by_reference)


def test_the_route_lists_and_refuses_a_taken_name(webui, pair, guidance_image):
    assert pair in ok(webui.get(ROUTE))["references"]
    taken = webui.post(ROUTE, {"name": pair, "image": guidance_image})
    assert taken.status == 400, taken.body
    assert "exists already" in str(taken.body)


def test_a_missing_reference_stops_the_job(webui):
    failed = webui.job(guidance=[{"image_reference": "no such reference"}])
    assert failed.status == 500, failed.body
    assert "no saved reference 'no such reference'" in error_message(failed.body)


def test_xyz_plot_sweeps_saved_references(webui, pair, guidance_image):
    ok(webui.post(ROUTE, {"name": "live one", "overwrite": True, "image": guidance_image}))
    axis = "[FlexDiffuse] Guidance image: saved reference"
    grid = xyz_script_args(webui, axis, "", choices=[pair, "live one"])
    body = ok(webui.job(guidance=[True], script_name="x/y/z plot", script_args=grid))
    infotexts = info(body)["infotexts"]
    assert any(f"FlexDiffuse image reference: {pair}," in text for text in infotexts)
    assert any("FlexDiffuse image reference: live one," in text for text in infotexts)
