"""SDXL through the HTTP API, on a server started with the SDXL checkpoint loaded
(``start --checkpoint rand-sdxl.safetensors``; ``bash tests/ci.sh`` runs these in each host's
SDXL pass): both towers and "ViT-L only", the pooled strength, hires fix, a negative image.

Jobs are 128x128 and 3 steps: the smallest SDXL job whose guidance moves pixels on every host
of the kit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from flexdiffuse.webui.infotext import ENABLED_KEY
from flexdiffuse.webui.settings import SDXL_VIT_L_ONLY, SDXL_VIT_L_ONLY_KEY
from tests.live.conftest import image_base64, info, ok, same_pixels, skip_or_fail

pytestmark = pytest.mark.sdxl

SDXL_JOB = {"width": 128, "height": 128, "steps": 3}


@pytest.fixture(scope="module")
def sdxl(webui, request):
    """The job fields of an SDXL job, if the server's checkpoint is the SDXL one."""
    title = request.config.getoption("--webui-sdxl-checkpoint")
    if not title:
        skip_or_fail("no --webui-sdxl-checkpoint given")
    loaded = str(ok(webui.get("/sdapi/v1/options")).get("sd_model_checkpoint", ""))
    if Path(title).stem not in loaded:
        skip_or_fail(f"the server's checkpoint is {loaded!r}: start it with --checkpoint {title}")
    return dict(SDXL_JOB)


@pytest.fixture
def vit_l_only(webui):
    """The "ViT-L only" setting for one job; put back after the test (A1111 1.7 keeps a job's
    override of a setting that is not in its config yet)."""
    yield {SDXL_VIT_L_ONLY: True}
    ok(webui.post("/sdapi/v1/options", {SDXL_VIT_L_ONLY: False}))


def test_sdxl_guided_differs_from_unguided_and_repeats(webui, guidance_image, sdxl):
    plain = ok(webui.job(**sdxl))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], **sdxl))
    again = ok(webui.job(guidance=[{"image": guidance_image}], **sdxl))
    assert not same_pixels(plain, guided)
    assert same_pixels(guided, again)
    assert f"{ENABLED_KEY}: True" in info(guided)["infotexts"][0]
    assert SDXL_VIT_L_ONLY_KEY not in info(guided)["infotexts"][0]


def test_vit_l_only_guides_differently_and_is_recorded(webui, guidance_image, sdxl, vit_l_only):
    plain = ok(webui.job(**sdxl))
    both = ok(webui.job(guidance=[{"image": guidance_image}], **sdxl))
    lighter = ok(
        webui.job(guidance=[{"image": guidance_image}], override_settings=vit_l_only, **sdxl)
    )
    assert not same_pixels(plain, lighter)
    assert not same_pixels(both, lighter)
    infotext = info(lighter)["infotexts"][0]
    assert f"{SDXL_VIT_L_ONLY_KEY}: True" in infotext
    parsed = ok(webui.post("/sdapi/v1/png-info", {"image": lighter["images"][0]}))["parameters"]
    assert parsed[SDXL_VIT_L_ONLY_KEY] == "True"


def test_pooled_strength_moves_the_image(webui, guidance_image, sdxl):
    guided = ok(webui.job(guidance=[{"image": guidance_image}], **sdxl))
    pooled = ok(webui.job(guidance=[{"image": guidance_image, "pooled": 1.0}], **sdxl))
    assert not same_pixels(guided, pooled)
    assert "FlexDiffuse pooled: 1.0" in info(pooled)["infotexts"][0]


def test_pooled_strength_needs_the_bigg_tower(webui, guidance_image, sdxl, vit_l_only):
    failed = webui.job(
        guidance=[{"image": guidance_image, "pooled": 1.0}], override_settings=vit_l_only, **sdxl
    )
    assert failed.status == 500, failed.body
    assert failed.body["error"] == "FlexDiffuseError"


def test_sdxl_hires_fix_and_a_negative_image(webui, guidance_image, sdxl):
    from PIL import Image

    from tests.conftest import TESTDATA

    with Image.open(TESTDATA / "zeus_mod.webp") as other:
        negative_image = image_base64(other)
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    job = {**sdxl, **hires, **webui.hires_fields(), "negative_prompt": "blurry"}
    plain = ok(webui.job(**job))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], **job))
    negative = ok(webui.job(guidance=[{"negative_image": negative_image}], **job))
    assert not same_pixels(plain, guided)
    assert not same_pixels(plain, negative)
    assert "FlexDiffuse negative image: " in info(negative)["infotexts"][0]
