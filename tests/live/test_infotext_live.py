"""Infotext through the HTTP API: what a guided image records, PNG Info reading it back, and
the ``infotext`` field of a request (A1111 1.8's paste through the API)."""

from __future__ import annotations

import pytest

from flexdiffuse.params import PARAM_SPECS, JobParams
from flexdiffuse.webui.infotext import ENABLED_KEY, image_key
from tests.live.conftest import info, ok, same_pixels

# A1111's infotext of a job like WebuiClient.job's. No "Version:": A1111 1.7 reads an older
# version as "Downcast alphas_cumprod" and keeps that override for every later job (an
# override of a setting not yet in its config is never restored).
BASE_INFOTEXT = (
    "a photo of a deer in a dark forest\n"
    "Steps: 2, Sampler: Euler, CFG scale: 7.0, Seed: 7, Size: 64x64"
)


@pytest.mark.smoke
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


def test_a_guided_infotext_records_the_flexdiffuse_version(webui, guidance_image):
    body = ok(webui.job(guidance=[{"image": guidance_image}]))
    assert "FlexDiffuse version: " in info(body)["infotexts"][0]


def test_png_info_of_an_unguided_image_has_no_flexdiffuse_key(webui):
    body = ok(webui.job())
    parsed = ok(webui.post("/sdapi/v1/png-info", {"image": body["images"][0]}))["parameters"]
    assert [key for key in parsed if key.startswith("FlexDiffuse")] == []


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
