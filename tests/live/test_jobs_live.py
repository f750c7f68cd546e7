"""Guided jobs through the HTTP API: txt2img, img2img, hires fix, batches, several images,
a negative image, the step window and the image inputs.

Opt-in: every live test needs ``--webui-url`` (``bash tests/ci.sh`` starts each host of the kit
and passes it; see ``tests/live/README.md``). Jobs are small, at a fixed seed
(``WebuiClient.job``), so they run on a CPU-only webui with random weights.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from flexdiffuse.params import SPECS_BY_NAME
from flexdiffuse.webui.args import (
    ARG_NAMES,
    IMAGE_INPUTS,
    MASK_INPUTS,
    REFERENCE_INPUTS,
    describe_input,
)
from flexdiffuse.webui.reference_panel import MENU_LABEL
from tests.live.conftest import (
    error_message,
    first_pixels,
    image_base64,
    info,
    ok,
    pixels,
    same_pixels,
)

MASKED = {mask: image for image, mask in MASK_INPUTS.items()}

LABELS = [
    "FlexDiffuse"
    if name == "enabled"
    else describe_input(name).capitalize()
    if name in IMAGE_INPUTS
    else f"Mask of the {describe_input(MASKED[name])}"
    if name in MASKED
    else MENU_LABEL
    if name in REFERENCE_INPUTS.values()
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


@pytest.mark.smoke
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


@pytest.fixture
def other_family(request, webui):
    """SD 2, switched to per job (SDXL has its own pass: tests/live/test_sdxl_live.py)."""
    title = request.config.getoption("--webui-sd2-checkpoint")
    if not title:
        pytest.skip("no --webui-sd2-checkpoint given")
    return {"sd_model_checkpoint": title}


def test_sd2_is_guided(webui, guidance_image, other_family):
    plain = ok(webui.job(override_settings=other_family))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], override_settings=other_family))
    assert not same_pixels(plain, guided)


def test_several_images_a_negative_image_and_a_step_window(webui, guidance_image):
    from PIL import Image

    from tests.conftest import TESTDATA

    with Image.open(TESTDATA / "zeus_mod.webp") as other:
        second = image_base64(other)
    plain = ok(webui.job())
    one = ok(webui.job(guidance=[{"image": guidance_image}]))
    two = ok(
        webui.job(guidance=[{"image": guidance_image, "image_2": second, "image_2_weight": 1.5}])
    )
    negative = ok(webui.job(guidance=[{"negative_image": second}], negative_prompt="blurry"))
    images = [pixels(body["images"][0]) for body in (plain, one, two, negative)]
    for index, image in enumerate(images[1:], 1):
        assert not np.array_equal(images[0], image), index
    assert not np.array_equal(images[1], images[2])
    infotext = info(two)["infotexts"][0]
    assert "FlexDiffuse image 2: " in infotext
    assert "FlexDiffuse image 2 weight: 1.5" in infotext
    assert "FlexDiffuse negative image: " in info(negative)["infotexts"][0]


@pytest.mark.every_family
def test_a_step_window_guides_only_its_steps(webui, guidance_image):
    # Enough steps that the window's steps move pixels: with 2 steps, start 0.5 guides only
    # the last, least noisy step, whose change SDXL on Forge Neo rounds away entirely.
    steps = {"steps": 8}
    plain = ok(webui.job(**steps))
    whole = ok(webui.job(guidance=[{"image": guidance_image}], **steps))
    late = ok(webui.job(guidance=[{"image": guidance_image, "start": 0.25}], **steps))
    assert not same_pixels(plain, late)
    assert not same_pixels(whole, late)
    assert "FlexDiffuse start: 0.25" in info(late)["infotexts"][0]


@pytest.mark.every_family
def test_a_dark_16_bit_png_guides_like_its_8_bit_twin(webui, guidance_image):
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(guidance_image))) as image:
        dark = np.asarray(image.convert("L")) // 3  # mean about 34 of 255
    eight = image_base64(Image.fromarray(dark, "L"))
    sixteen = image_base64(Image.fromarray(dark.astype(np.uint16) * 257))  # the same levels
    plain = first_pixels(ok(webui.job())).astype(float)
    guided = [
        first_pixels(ok(webui.job(guidance=[{"image": image}]))).astype(float)
        for image in (eight, sixteen)
    ]
    # Measured against the host's own response to this conditioning change: how far the
    # 8-bit image moves pixels differs per host (Forge Classic's move about half as far as
    # A1111's), so the 16-bit twin must land well within that distance of the 8-bit result.
    moved = np.abs(guided[0] - plain).mean()
    assert moved > 0, "the 8-bit image did not guide"
    assert np.abs(guided[0] - guided[1]).mean() < moved / 4


def test_a_data_url_without_base64_is_accepted_or_named(webui, guidance_image):
    reply = webui.job(guidance=[{"image": "data:image/png," + guidance_image}])
    if reply.status == 200:
        return  # accepted: the payload is base64 all the same
    assert reply.body["error"] == "FlexDiffuseError", reply.body
    assert "not valid base64" not in error_message(reply.body)
    assert ";base64" in error_message(reply.body)
