"""The X/Y/Z plot with FlexDiffuse's axes, on every host: the script's arguments come from the
host's ``/sdapi/v1/script-info`` (``xyz_script_args``), never from A1111's list."""

from __future__ import annotations

import json

import pytest

from tests.live.conftest import error_message, info, ok, xyz_script_args


@pytest.mark.smoke
def test_xyz_plot_sweeps_a_parameter(webui, guidance_image):
    grid = xyz_script_args(webui, "[FlexDiffuse] Linear", "0.1, 0.9")
    body = ok(
        webui.job(
            guidance=[{"image": guidance_image}],
            script_name="x/y/z plot",
            script_args=grid,
        )
    )
    infotexts = info(body)["infotexts"]
    assert any("FlexDiffuse linear: 0.1," in text for text in infotexts)
    assert any("FlexDiffuse linear: 0.9," in text for text in infotexts)


def test_xyz_plot_sweeps_the_strength(webui, guidance_image):
    grid = xyz_script_args(webui, "[FlexDiffuse] Image strength", "0, 1.5")
    body = ok(
        webui.job(guidance=[{"image": guidance_image}], script_name="x/y/z plot", script_args=grid)
    )
    infotexts = info(body)["infotexts"]
    assert any("FlexDiffuse strength: 1.5" in text for text in infotexts)
    assert any("FlexDiffuse: False" in text and "strength: 0.0" in text for text in infotexts)


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
