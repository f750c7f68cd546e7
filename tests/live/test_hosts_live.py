"""Live tests of what the hosts do differently, against any running webui (``--webui-url``).

Forge hosts skip the negative prompt at CFG scale 1 (Forge 2 before the step callbacks, old
Forge in its sampler), and Forge 2 and reForge run hires fix's second pass at ``hr_cfg``; these
tests hold on every host, and check FlexDiffuse's note where the host skips the negative
prompt. What the host does is read from its API
(:meth:`~tests.live.conftest.WebuiClient.hires_fields`) or its pixels, never from an option.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from flexdiffuse.webui.infotext import ENABLED_KEY, NOTE_KEY
from flexdiffuse.webui.job import NO_NEGATIVE_PROMPT
from tests.live.conftest import ok, pixels


def infotext(body) -> str:
    return json.loads(body["info"])["infotexts"][0]


@pytest.mark.every_family
def test_cfg_scale_1_guides_the_prompt(webui, guidance_image):
    plain = ok(webui.job(cfg_scale=1))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], cfg_scale=1))
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))
    assert f"{ENABLED_KEY}: True" in infotext(guided)


@pytest.mark.every_family
def test_a_negative_image_at_cfg_scale_1_is_claimed_only_when_it_guides(webui, guidance_image):
    """Forge 2 and old Forge skip the negative side at CFG scale 1 (A1111 computes it, though
    it then cancels out): decided from the pixels, never from the host's name or fields."""
    job = {"cfg_scale": 1, "negative_prompt": "blurry"}
    plain = ok(webui.job(**job))
    negative = ok(webui.job(guidance=[{"negative_image": guidance_image}], **job))
    text = infotext(negative)
    if np.array_equal(pixels(plain["images"][0]), pixels(negative["images"][0])):
        assert f"{ENABLED_KEY}: False" in text  # nothing guided: the image is not claimed
        assert NO_NEGATIVE_PROMPT.split(":")[0] in text
    else:
        assert f"{ENABLED_KEY}: True" in text
        assert NOTE_KEY not in text


@pytest.mark.every_family
def test_hires_second_pass_without_negative_prompt_is_guided(webui, guidance_image):
    hires = {"enable_hr": True, "hr_scale": 1.5, "hr_upscaler": "Latent", "denoising_strength": 0.5}
    hires.update(webui.hires_fields(cfg_scale=1.0))  # Forge: the second pass has no uncond
    plain = ok(webui.job(**hires))
    guided = ok(webui.job(guidance=[{"image": guidance_image}], **hires))
    assert not np.array_equal(pixels(plain["images"][0]), pixels(guided["images"][0]))
    assert NOTE_KEY not in infotext(guided)


@pytest.mark.every_family
def test_clip_skip_with_a_concepts_prompt(webui, guidance_image):
    """A concepts prompt is encoded at the job's CLIP skip as the host encodes prompts (Forge 2
    sets it on the engine; that path is tested in tests/forge). Where the host ignores the
    setting for this checkpoint (old Forge; Forge Neo's SDXL uses at least 2), the guided
    jobs must agree as the unguided ones do."""
    args = [{"image": guidance_image, "concepts": "deer, forest"}]

    def at(skip: int, guidance=None):
        settings = {"CLIP_stop_at_last_layers": skip}
        return ok(webui.job(guidance=guidance, override_settings=settings))

    honoured = not np.array_equal(pixels(at(1)["images"][0]), pixels(at(2)["images"][0]))
    one, two = at(1, args), at(2, args)
    assert f"{ENABLED_KEY}: True" in infotext(two)
    differ = not np.array_equal(pixels(one["images"][0]), pixels(two["images"][0]))
    assert differ == honoured, (
        f"the host honours CLIP skip: {honoured}; guided jobs differ: {differ}"
    )


def test_the_page_gets_every_flexdiffuse_component_whole(webui):
    """The page is built from ``/config``: a FlexDiffuse component sent there without its
    props (gradio 4 drops a component subclass's props) stops the whole page loading."""
    components = webui.get("/config").body["components"]
    ours = [
        component
        for component in components
        if "flexdiffuse" in str(component.get("props", {}).get("elem_id", ""))
    ]
    assert len(ours) > 20  # the panels and the settings
    for component in components:
        props = component.get("props", {})
        if component.get("type") == "dropdown":
            assert isinstance(props.get("choices"), list), (component["id"], props)
    settings = {component["props"]["elem_id"]: component for component in ours}
    tower = settings["setting_flexdiffuse_model_vit_l"]["props"]
    assert tower["allow_custom_value"] is True
    assert tower["label"]
