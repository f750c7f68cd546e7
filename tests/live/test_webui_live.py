"""Opt-in tests against a real, running A1111 with FlexDiffuse installed.

    pytest tests/live --webui-url http://127.0.0.1:7860 [--webui-vit-l PATH] \\
        [--webui-sdxl-checkpoint TITLE --webui-vit-bigg PATH] [--webui-sd2-checkpoint TITLE ...]

They use only the HTTP API, at a fixed seed and tiny sizes, so they also run on a CPU-only
webui with random weights (see docs/development.md: "Testing against a real webui").
"""

from __future__ import annotations

import numpy as np
import pytest

from flexdiffuse.params import PARAM_SPECS, SPECS_BY_NAME, JobParams
from flexdiffuse.webui.args import ARG_NAMES, IMAGE_INPUTS, describe_input
from flexdiffuse.webui.infotext import ENABLED_KEY, image_key
from tests.live.conftest import error_message, info, ok, pixels, xyz_script_args

LABELS = [
    "FlexDiffuse"
    if name == "enabled"
    else describe_input(name).capitalize()
    if name in IMAGE_INPUTS
    else SPECS_BY_NAME[name].label
    for name in ARG_NAMES
]


def test_script_info_describes_flexdiffuse_in_both_tabs(webui):
    scripts = ok(webui.get("/sdapi/v1/script-info"))
    ours = [s for s in scripts if s["name"] == "flexdiffuse"]
    assert sorted(s["is_img2img"] for s in ours) == [False, True]
    for script in ours:
        assert script["is_alwayson"]
        assert [arg["label"] for arg in script["args"]] == LABELS
        linear = script["args"][LABELS.index("Linear")]
        assert (linear["minimum"], linear["maximum"], linear["value"]) == (-1.0, 1.0, 0.5)


def test_guided_txt2img_differs_from_unguided_at_a_fixed_seed(webui, guidance_image):
    plain = ok(webui.job())
    guided = ok(webui.job(guidance=[{"image": guidance_image, "linear": 0.8}]))
    again = ok(webui.job())
    assert np.array_equal(pixels(plain["images"][0]), pixels(again["images"][0]))  # seed fixed
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))


def test_all_weights_zero_gives_the_unguided_image_exactly(webui, guidance_image):
    plain = ok(webui.job())
    zero = {"image": guidance_image, "linear": 0, "clustered": 0, "threshold_mult": 0}
    guided = ok(webui.job(guidance=[zero]))
    assert np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))


def test_positional_arguments_in_panel_order(webui, guidance_image):
    args = [True, "data:image/png;base64," + guidance_image, 0.25, 0.75, 0.15, 0.9]
    body = ok(webui.job(guidance=args))
    assert info(body)["extra_generation_params"]["FlexDiffuse linear"] == "0.9"


def test_infotext_carries_every_parameter_and_reads_back(webui, guidance_image):
    params = JobParams().replace(linear=0.3, order="text", reuse=False, concepts="deer, forest")
    values = {spec.name: params.get(spec.name) for spec in PARAM_SPECS}
    body = ok(webui.job(guidance=[{"image": guidance_image, **values}]))
    infotext = info(body)["infotexts"][0]
    assert f"{image_key('image')}: " in infotext
    # A1111's own PNG-info parser reads back every key written (defaults of "off" parameters
    # are not written, and reading adds nothing).
    parsed = ok(webui.post("/sdapi/v1/png-info", {"image": body["images"][0]}))["parameters"]
    assert parsed[ENABLED_KEY] == "True"
    assert {key: parsed[key] for key in params.to_infotext()} == params.to_infotext()


def test_img2img_is_guided(webui, guidance_image):
    init = {"init_images": [guidance_image], "denoising_strength": 0.6}
    plain = ok(webui.job("img2img", **init))
    guided = ok(webui.job("img2img", guidance=[{"image": guidance_image}], **init))
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))


def test_batches_long_prompts_and_composition(webui, guidance_image):
    prompt = "a deer AND " + ", ".join(f"detail {i}" for i in range(60))
    body = ok(webui.job(guidance=[{"image": guidance_image}], prompt=prompt, batch_size=2))
    assert len(body["images"]) == 2


def test_hires_fix_second_pass(webui, guidance_image):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    hires.update(webui.hires_fields())
    plain = ok(webui.job(**hires))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], **hires))
    assert pixels(guided["images"][0]).shape == (96, 96, 3)
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))


def test_empty_prompt_uses_the_image_alone(webui, guidance_image):
    plain = ok(webui.job(prompt=""))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], prompt=""))
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))


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


@pytest.fixture(params=["sd2", "sdxl"])
def other_family(request, webui):
    title = request.config.getoption(f"--webui-{request.param}-checkpoint")
    if not title:
        pytest.skip(f"no --webui-{request.param}-checkpoint given")
    return request.param, {"sd_model_checkpoint": title}


def test_other_families_are_guided(webui, guidance_image, other_family):
    family, checkpoint = other_family
    plain = ok(webui.job(override_settings=checkpoint))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], override_settings=checkpoint))
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))
    if family == "sdxl":
        pooled = ok(
            webui.job(
                guidance=[{"image": guidance_image, "pooled": 1.0}], override_settings=checkpoint
            )
        )
        assert not np.array_equal(pixels(guided["images"][0]), pixels(pooled["images"][0]))
        vit_l_only = {**checkpoint, "flexdiffuse_sdxl_vit_l_only": True}
        lighter = ok(webui.job(guidance=[{"image": guidance_image}], override_settings=vit_l_only))
        assert not np.array_equal(pixels(plain["images"][0]), pixels(lighter["images"][0]))


def test_several_images_a_negative_image_and_a_step_window(webui, guidance_image):
    from PIL import Image

    from tests.conftest import TESTDATA
    from tests.live.conftest import image_base64

    with Image.open(TESTDATA / "zeus_mod.webp") as other:
        second = image_base64(other)
    plain = ok(webui.job())
    one = ok(webui.job(guidance=[{"image": guidance_image}]))
    two = ok(
        webui.job(guidance=[{"image": guidance_image, "image_2": second, "image_2_weight": 1.5}])
    )
    negative = ok(webui.job(guidance=[{"negative_image": second}], negative_prompt="blurry"))
    late = ok(webui.job(guidance=[{"image": guidance_image, "start": 0.5}]))
    images = [pixels(body["images"][0]) for body in (plain, one, two, negative, late)]
    for index, image in enumerate(images[1:], 1):
        assert not np.array_equal(images[0], image), index
    assert not np.array_equal(images[1], images[2])
    assert not np.array_equal(images[1], images[4])
    infotext = info(two)["infotexts"][0]
    assert "FlexDiffuse image 2: " in infotext
    assert "FlexDiffuse image 2 weight: 1.5" in infotext
    assert "FlexDiffuse start: 0.5" in info(late)["infotexts"][0]
    assert "FlexDiffuse negative image: " in info(negative)["infotexts"][0]
