"""The image strength, the automatic floor and presets, through the HTTP API."""

from __future__ import annotations

import numpy as np

from flexdiffuse.params import PARAM_SPECS, format_value
from flexdiffuse.presets import preset_values
from flexdiffuse.webui.args import ARG_NAMES
from flexdiffuse.webui.infotext import ENABLED_KEY, NOTE_KEY
from tests.live.conftest import error_message, info, ok, pixels


def test_strength_zero_gives_the_unguided_image_and_says_so(webui, guidance_image):
    plain = ok(webui.job())
    off = ok(webui.job(guidance=[{"image": guidance_image, "strength": 0, "concepts": "deer"}]))
    assert np.array_equal(pixels(plain["images"][0]), pixels(off["images"][0]))
    params = info(off)["extra_generation_params"]
    assert params[ENABLED_KEY] == "False"
    assert params["FlexDiffuse strength"] == "0.0"
    assert "Image strength is 0" in params[NOTE_KEY]


def test_a_strength_and_the_automatic_floor_read_back_from_png_info(webui, guidance_image):
    values = {"image": guidance_image, "strength": 1.5, "auto_floor": "on", "threshold_mult": 1}
    body = ok(webui.job(guidance=[values]))
    parsed = ok(webui.post("/sdapi/v1/png-info", {"image": body["images"][0]}))["parameters"]
    assert parsed[ENABLED_KEY] == "True"
    assert parsed["FlexDiffuse strength"] == "1.5"
    assert parsed["FlexDiffuse auto floor"] == "True"
    half = ok(webui.job(guidance=[{**values, "strength": 0.5}]))
    assert not np.array_equal(pixels(body["images"][0]), pixels(half["images"][0]))


def test_positional_arguments_reach_the_appended_parameters(webui, guidance_image):
    defaults = {spec.name: format_value(spec, spec.default) for spec in PARAM_SPECS}
    args = [defaults.get(name) for name in ARG_NAMES]  # images None
    args[0], args[1] = True, "data:image/png;base64," + guidance_image
    args[ARG_NAMES.index("strength")] = 0.7
    args[ARG_NAMES.index("auto_floor")] = True
    params = info(ok(webui.job(guidance=args)))["extra_generation_params"]
    assert params["FlexDiffuse strength"] == "0.7"
    assert params["FlexDiffuse auto floor"] == "True"


def test_a_named_preset_sets_its_values_and_named_values_win(webui, guidance_image):
    body = ok(webui.job(guidance=[{"image": guidance_image, "preset": "strong", "linear": 0.3}]))
    params = info(body)["extra_generation_params"]
    strong = preset_values("strong")
    assert params["FlexDiffuse threshold"] == str(strong["threshold_mult"])
    assert params["FlexDiffuse threshold floor"] == str(strong["threshold_floor"])
    assert params["FlexDiffuse linear"] == "0.3"
    assert not any("preset" in key.lower() for key in params)
    failed = webui.job(guidance=[{"image": guidance_image, "preset": "loud"}])
    assert failed.status == 500
    assert "Unknown preset 'loud'" in error_message(failed.body)
