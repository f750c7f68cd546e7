"""Guidance during sampling, in the fake host: what the UNet gets at every step of a job.

Each scenario runs the same job guided and unguided. The unguided run gives A1111's own
batch for every step; the guided run must give exactly ``guide`` (the core engine) applied to
it, row by row, while the negative prompt's rows stay untouched.
"""

from __future__ import annotations

import pytest
import torch
from modules import processing, shared

from flexdiffuse import GuidanceParams, ImageEncoder, guide, pure_image_guidance
from flexdiffuse.guidance import ConditioningGuide
from flexdiffuse.webui import script
from tests.webui.conftest import gradient

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE = gradient()
PARAMS = GuidanceParams(linear=0.6, max_guidance=0.5)


@pytest.fixture
def tokens(tiny_towers) -> torch.Tensor:
    return ImageEncoder.from_pretrained(tiny_towers["vit_l"])(IMAGE)


def run_pair(
    webui, method: str = "txt2img", params: GuidanceParams = PARAMS, concepts: str = "", **job
):
    """The same job unguided and guided."""
    run = getattr(webui, method)
    plain = run(webui.args(enabled=False), **job)
    values = {name: getattr(params, name) for name in params.__dataclass_fields__}
    guided = run(webui.args(image=IMAGE, concepts=concepts, **values), **job)
    return plain, guided


def assert_guided(plain, guided, tokens, params=PARAMS, hr=False):
    before, after = plain.cond_steps(hr), guided.cond_steps(hr)
    assert len(before) == len(after) > 0
    for step, (original, got) in enumerate(zip(before, after, strict=True)):
        torch.testing.assert_close(got, guide(original, tokens, params), msg=f"step {step}")


def assert_uncond_untouched(plain, guided):
    for a, b in zip(plain.p.unet_calls, guided.p.unet_calls, strict=True):
        assert (a.text_uncond is None) == (b.text_uncond is None)
        if a.text_uncond is not None:
            assert torch.equal(a.text_uncond, b.text_uncond)


def test_one_prompt_is_guided_at_every_step(webui, tokens):
    plain, guided = run_pair(webui, prompt="a photo of a cat", steps=3)
    assert_guided(plain, guided, tokens)
    assert_uncond_untouched(plain, guided)
    assert not torch.equal(plain.cond_steps()[0], guided.cond_steps()[0])


def test_batch_size_and_batch_count(webui, tokens):
    prompts = ["a cat", "a dog on a hill", "a red house", "two birds"]
    plain, guided = run_pair(webui, prompt=prompts, batch_size=2, n_iter=2, steps=2)
    assert [c.text_cond.shape[0] for c in guided.p.unet_calls] == [2, 2, 2, 2]
    assert_guided(plain, guided, tokens)
    assert len(guided.processed.infotexts) == 4


def test_prompts_over_75_tokens_guide_each_chunk(webui, tokens):
    long_prompt = " ".join(f"word{i}" for i in range(160))  # three chunks
    plain, guided = run_pair(webui, prompt=long_prompt, steps=2)
    assert guided.cond_steps()[0].shape == (1, 231, 768)
    assert_guided(plain, guided, tokens)


@pytest.mark.parametrize("prompt", ["a [cat:dog:2] in a field", "a [cat|dog] in a field"])
def test_prompt_editing_and_alternation_switch_between_guided_rows(webui, tokens, prompt):
    plain, guided = run_pair(webui, prompt=prompt, steps=4)
    first, *later = plain.cond_steps()
    assert any(not torch.equal(first, step) for step in later)  # the schedule switched
    assert_guided(plain, guided, tokens)


def test_and_composition_guides_every_sub_prompt(webui, tokens):
    plain, guided = run_pair(webui, prompt="a cat AND a dog :0.5", batch_size=2, steps=2)
    assert guided.cond_steps()[0].shape[0] == 4  # 2 images x 2 sub-prompts
    assert_guided(plain, guided, tokens)


def test_sub_prompts_of_different_lengths_are_guided_before_padding(webui, tokens):
    long_part = " ".join(f"w{i}" for i in range(100))
    _, guided = run_pair(webui, prompt=f"a cat AND {long_part}", steps=1)
    short_row = guided.cond_steps()[0][0]
    assert short_row.shape[0] == 154
    cat = shared.sd_model.get_learned_conditioning(["a cat"])[0]
    expected = guide(cat, tokens, PARAMS)
    # A1111 pads the shorter row by repeating its last token: FlexDiffuse pads the guided row.
    torch.testing.assert_close(short_row[:77], expected)
    torch.testing.assert_close(short_row[77:], expected[-1:].expand(77, -1))


def test_hires_fix_second_pass_is_guided_with_its_own_prompt(webui, tokens):
    job = {"prompt": "a cat", "enable_hr": True, "hr_prompt": "a cat, detailed", "steps": 2}
    plain, guided = run_pair(webui, hr_second_pass_steps=3, **job)
    assert len(guided.cond_steps(hr=True)) == 3
    assert_guided(plain, guided, tokens)
    assert_guided(plain, guided, tokens, hr=True)
    assert not torch.equal(guided.cond_steps()[0], guided.cond_steps(hr=True)[0])


@pytest.mark.parametrize("mask", [None, gradient(64, 64, seed=3).convert("L")])
def test_img2img_and_inpainting(webui, tokens, mask):
    plain, guided = run_pair(webui, "img2img", prompt="a cat", steps=4, image_mask=mask)
    assert len(guided.cond_steps()) == 3  # denoising strength 0.75
    assert_guided(plain, guided, tokens)


@pytest.mark.a1111_only  # A1111's padding
def test_s_min_uncond_skips_and_padding_keep_guided_rows(webui, tokens):
    shared.opts.data["pad_cond_uncond"] = True
    long_negative = " ".join(f"bad{i}" for i in range(90))
    job = {"prompt": "a cat", "negative_prompt": long_negative, "steps": 4, "s_min_uncond": 50}
    plain, guided = run_pair(webui, **job)
    assert any(call.text_uncond is None for call in guided.p.unet_calls)  # skipped steps
    for a, b in zip(plain.p.unet_calls, guided.p.unet_calls, strict=True):
        assert b.text_cond.shape == (1, 154, 768)  # padded after guidance, like the original
        torch.testing.assert_close(b.text_cond[:, :77], guide(a.text_cond[:, :77], tokens, PARAMS))
        assert torch.equal(b.text_cond[:, 77:], a.text_cond[:, 77:])
    assert_uncond_untouched(plain, guided)


def test_cached_conditionings_are_never_modified(webui):
    job = webui.txt2img(webui.args(image=IMAGE, linear=1.0), prompt="a cat", steps=2)
    cached = processing.StableDiffusionProcessing.cached_c[1]
    cond = cached.batch[0][0].schedules[0].cond
    snapshot = cond.clone()
    webui.txt2img(webui.args(image=IMAGE, linear=1.0), prompt="a cat", steps=2)
    assert processing.StableDiffusionProcessing.cached_c[1] is cached  # reused by the 2nd job
    assert torch.equal(cond, snapshot)
    assert job.p.c is cached


def test_guidance_is_computed_once_per_conditioning_not_per_step(webui, monkeypatch):
    rows = []
    real = ConditioningGuide.apply

    def counting(self, cond, pure=False):
        rows.append(cond.shape[0])
        return real(self, cond, pure=pure)

    monkeypatch.setattr(ConditioningGuide, "apply", counting)
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a [cat:dog:3] here", steps=6)
    assert len(job.cond_steps()) == 6
    assert rows == [2]  # both scheduled conditionings, guided together once


def test_concepts_prompt_is_encoded_by_the_checkpoint_and_maps_tokens(webui, tokens):
    params = GuidanceParams(linear=0.0, clustered=0.0, threshold_mult=0.0, concept_threshold=0.0)
    plain, guided = run_pair(
        webui, params=params, concepts="a cat", prompt="a cat on a mat", steps=1
    )
    assert ["a cat"] in shared.sd_model.encoded
    concept = shared.sd_model.get_learned_conditioning(["a cat"])[0]
    original = plain.cond_steps()[0]
    torch.testing.assert_close(guided.cond_steps()[0], guide(original, tokens, params, concept))
    assert not torch.equal(guided.cond_steps()[0], original)


def test_empty_prompt_takes_the_image_and_warns(webui, tokens):
    plain, guided = run_pair(webui, prompt=["", "a cat"], batch_size=2, steps=1)
    original, got = plain.cond_steps()[0], guided.cond_steps()[0]
    torch.testing.assert_close(got[0], pure_image_guidance(original[0], tokens))
    torch.testing.assert_close(got[1], guide(original[1], tokens, PARAMS))
    assert "pure image guidance" in guided.processed.comments
    assert "pure image guidance" not in plain.processed.comments


def test_all_weights_zero_gives_the_unguided_conditioning_exactly(webui):
    zero = GuidanceParams(linear=0, clustered=0, threshold_mult=0)
    plain, guided = run_pair(webui, params=zero, prompt="a cat", steps=2)
    for a, b in zip(plain.cond_steps(), guided.cond_steps(), strict=True):
        assert torch.equal(a, b)


def test_guidance_does_not_leak_into_the_next_job_or_the_other_tab(webui):
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    after = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1)
    other_tab = webui.img2img(webui.args(enabled=False), prompt="a cat", steps=2)
    assert script.RUNTIME.host.job_of(after.p) is None
    assert script.RUNTIME.host.job_of(other_tab.p) is None
    fresh = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1)
    assert torch.equal(after.cond_steps()[0], fresh.cond_steps()[0])


def test_the_vision_model_runs_once_per_image(webui, monkeypatch):
    encoded = []
    real = ImageEncoder._encode
    monkeypatch.setattr(
        ImageEncoder, "_encode", lambda self, px: encoded.append(1) or real(self, px)
    )
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1, n_iter=2)
    webui.img2img(webui.args(image=IMAGE.copy()), prompt="a dog", steps=2)
    assert len(encoded) == 1


@pytest.mark.parametrize("prompt", ["a cat", "a cat AND a dog"], ids=["one", "AND"])
def test_a_negative_image_at_cfg_scale_1_is_claimed_only_where_it_acts(webui, prompt):
    """At CFG scale 1, A1111's CFG adds the prompt's difference from the negative prompt
    back in full: the negative side cancels out, unless a prompt's AND weights sum to more.
    Every Forge's sampler drops it at 1 whatever the weights (run again in tests/forge)."""
    from flexdiffuse.webui import script
    from flexdiffuse.webui.hosts.forge import ForgeHost
    from flexdiffuse.webui.infotext import ENABLED_KEY, NOTE_KEY
    from flexdiffuse.webui.job import NO_NEGATIVE_PROMPT

    guided = " AND " in prompt and not isinstance(script.RUNTIME.host, ForgeHost)
    job = {"prompt": prompt, "negative_prompt": "blurry", "steps": 2, "cfg_scale": 1}
    negative = webui.txt2img(webui.args(image=None, negative_image=IMAGE), **job)
    params = negative.p.extra_generation_params
    assert params[ENABLED_KEY] == str(guided)
    assert (NO_NEGATIVE_PROMPT in params.get(NOTE_KEY, "")) is not guided
    seven = webui.txt2img(webui.args(image=None, negative_image=IMAGE), **{**job, "cfg_scale": 7})
    assert seven.p.extra_generation_params[ENABLED_KEY] == "True"
