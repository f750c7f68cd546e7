"""Several guidance images, a negative image and the step window, in the fake host."""

from __future__ import annotations

import pytest
import torch
from modules import shared

from flexdiffuse import GuidanceParams, ImageEncoder, guide
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.infotext import image_key
from tests.webui.conftest import gradient

FIRST, SECOND, NEGATIVE = gradient(seed=1), gradient(52, 44, seed=2), gradient(seed=3)


@pytest.fixture
def encode(tiny_towers):
    encoder = ImageEncoder.from_pretrained(tiny_towers["vit_l"])
    return encoder


def run(webui, args, **job):
    job.setdefault("prompt", "a cat on a red sofa")
    job.setdefault("steps", 4)
    return webui.txt2img(args, **job)


def test_tokens_of_every_image_are_candidates_weighted_by_their_image(webui, encode):
    plain = run(webui, webui.args(enabled=False))
    args = webui.args(image=FIRST, image_3=SECOND, image_3_weight=0.5, linear=0.8)
    guided = run(webui, args)
    tokens = torch.cat([encode(FIRST), encode(SECOND)])
    weights = torch.cat([torch.ones(len(encode(FIRST))), torch.full((len(encode(SECOND)),), 0.5)])
    params = GuidanceParams(linear=0.8)
    for before, after in zip(plain.cond_steps(), guided.cond_steps(), strict=True):
        torch.testing.assert_close(after, guide(before, tokens, params, token_weights=weights))
    infotext = guided.processed.infotexts[0]
    assert f"{image_key('image')}: " in infotext
    assert f"{image_key('image_3')}: " in infotext
    assert "FlexDiffuse image 3 weight: 0.5" in infotext


def test_an_image_of_weight_zero_is_left_out(webui):
    alone = run(webui, webui.args(image=FIRST))
    with_unused = run(webui, webui.args(image=FIRST, image_2=SECOND, image_2_weight=0))
    for a, b in zip(alone.cond_steps(), with_unused.cond_steps(), strict=True):
        assert torch.equal(a, b)


def test_the_negative_image_guides_the_negative_prompt_only(webui, encode):
    job = {"negative_prompt": "blurry, dark"}
    plain = run(webui, webui.args(enabled=False), **job)
    guided = run(webui, webui.args(negative_image=NEGATIVE, negative_weight=0.5), **job)
    weights = torch.full((len(encode(NEGATIVE)),), 0.5)
    params = GuidanceParams()
    for a, b in zip(plain.p.unet_calls, guided.p.unet_calls, strict=True):
        assert torch.equal(b.text_cond, a.text_cond)  # no guidance image: prompts untouched
        expected = guide(a.text_uncond, encode(NEGATIVE), params, token_weights=weights)
        torch.testing.assert_close(b.text_uncond, expected)
    assert "FlexDiffuse negative image: " in guided.processed.infotexts[0]


def test_an_empty_negative_prompt_is_guided_not_replaced(webui, encode):
    plain = run(webui, webui.args(enabled=False), negative_prompt="")
    guided = run(webui, webui.args(negative_image=NEGATIVE), negative_prompt="")
    before, after = plain.p.unet_calls[0].text_uncond, guided.p.unet_calls[0].text_uncond
    torch.testing.assert_close(after, guide(before, encode(NEGATIVE), GuidanceParams()))
    assert "pure image guidance" not in guided.processed.comments


@pytest.mark.parametrize(
    ("start", "end", "guided_steps"),
    [(0.0, 1.0, [0, 1, 2, 3]), (0.5, 1.0, [2, 3]), (0.0, 0.5, [0, 1, 2]), (0.3, 0.6, [2])],
)
def test_the_step_window(webui, start, end, guided_steps):
    plain = run(webui, webui.args(enabled=False))
    args = webui.args(image=FIRST, negative_image=NEGATIVE, start=start, end=end)
    guided = run(webui, args)
    changed = [
        step
        for step, (a, b) in enumerate(zip(plain.p.unet_calls, guided.p.unet_calls, strict=True))
        if not torch.equal(a.text_cond, b.text_cond)
        and not torch.equal(a.text_uncond, b.text_uncond)
    ]
    assert changed == guided_steps


def test_both_hires_passes_keep_the_window(webui):
    job = {"enable_hr": True, "hr_second_pass_steps": 4}
    plain = run(webui, webui.args(enabled=False), **job)
    guided = run(webui, webui.args(image=FIRST, start=0.5), **job)
    for hr in (False, True):
        changed = [
            not torch.equal(a, b)
            for a, b in zip(plain.cond_steps(hr), guided.cond_steps(hr), strict=True)
        ]
        assert changed == [False, False, True, True]


def test_an_empty_window_is_refused(webui):
    with pytest.raises(FlexDiffuseError, match="no step would be guided"):
        run(webui, webui.args(image=FIRST, start=0.7, end=0.2))


def test_a_negative_image_alone_is_a_guided_job(webui):
    job = run(webui, webui.args(negative_image=NEGATIVE))
    assert "FlexDiffuse: True" in job.processed.infotexts[0]
    assert shared.opts  # the job ran


def test_sdxl_negative_guides_both_parts_and_keeps_the_pooled_vector(webui):
    from sdmodel import FakeSdModel

    shared.sd_model = FakeSdModel("sdxl")
    plain = run(webui, webui.args(enabled=False), negative_prompt="ugly")
    guided = run(webui, webui.args(negative_image=NEGATIVE, pooled=1.0), negative_prompt="ugly")
    before, after = plain.p.unet_calls[0].text_uncond, guided.p.unet_calls[0].text_uncond
    assert not torch.equal(before["crossattn"][..., :768], after["crossattn"][..., :768])
    assert not torch.equal(before["crossattn"][..., 768:], after["crossattn"][..., 768:])
    assert torch.equal(before["vector"], after["vector"])
