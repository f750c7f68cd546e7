"""SD 1.x, SD 2.x and SDXL: each checkpoint family guided by the towers of its text encoders."""

from __future__ import annotations

import pytest
import torch
from modules import infotext_utils, script_callbacks, shared
from safetensors.torch import load_file, save_file
from sdmodel import FakeSdModel

from flexdiffuse import GuidanceParams, ImageEncoder, guide
from flexdiffuse.webui import script, settings
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.families import SD1, SD2, SDXL, VIT_BIGG, VIT_H, VIT_L, detect_family
from tests.webui.conftest import gradient

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE = gradient()
PARAMS = GuidanceParams(linear=0.7, max_guidance=0.6)
VALUES = {"linear": 0.7, "max_guidance": 0.6}


def tokens_of(webui, tower) -> torch.Tensor:
    return ImageEncoder.from_pretrained(webui.towers[tower.name])(IMAGE)


def run_pair(webui, **job):
    job.setdefault("prompt", "a cat in the snow")
    job.setdefault("steps", 2)
    plain = webui.txt2img(webui.args(enabled=False), **job)
    guided = webui.txt2img(webui.args(image=IMAGE, **VALUES), **job)
    return plain.cond_steps(), guided.cond_steps(), guided


@pytest.mark.parametrize(
    ("flags", "family"),
    [("sd1", SD1), ("sd2", SD2), ("sdxl", SDXL)],
)
def test_family_detection_from_the_model_flags(flags, family):
    assert detect_family(FakeSdModel(flags)) is family


def test_no_checkpoint_loaded():
    with pytest.raises(FlexDiffuseError, match="No Stable Diffusion checkpoint is loaded"):
        detect_family(None)


def test_sd2_is_guided_by_the_vit_h_tower(webui):
    shared.sd_model = FakeSdModel("sd2")
    plain, guided, _ = run_pair(webui)
    assert guided[0].shape == (1, 77, 1024)
    for before, after in zip(plain, guided, strict=True):
        torch.testing.assert_close(after, guide(before, tokens_of(webui, VIT_H), PARAMS))


def test_sdxl_guides_each_part_with_its_own_tower(webui):
    shared.sd_model = FakeSdModel("sdxl")
    plain, guided, _ = run_pair(webui)
    assert guided[0]["crossattn"].shape == (1, 77, 2048)
    for before, after in zip(plain, guided, strict=True):
        clip_l, clip_g = before["crossattn"][..., :768], before["crossattn"][..., 768:]
        expected_l = guide(clip_l, tokens_of(webui, VIT_L), PARAMS)
        expected_g = guide(clip_g, tokens_of(webui, VIT_BIGG), PARAMS)
        torch.testing.assert_close(after["crossattn"][..., :768], expected_l)
        torch.testing.assert_close(after["crossattn"][..., 768:], expected_g)
        assert torch.equal(after["vector"], before["vector"])  # pooled guidance is off
        assert after.shape == after["crossattn"].shape  # A1111's DictWithShape survives


def test_sdxl_vit_l_only_leaves_the_bigg_part_and_never_loads_bigg(webui):
    shared.sd_model = FakeSdModel("sdxl")
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = True
    plain, guided, _ = run_pair(webui)
    before, after = plain[0]["crossattn"], guided[0]["crossattn"]
    assert torch.equal(after[..., 768:], before[..., 768:])
    assert not torch.equal(after[..., :768], before[..., :768])
    assert str(webui.towers["vit_bigg"]) not in script.RUNTIME.towers.loaded()


def test_sdxl_pooled_guidance_turns_the_clip_g_embedding_toward_the_image(webui):
    shared.sd_model = FakeSdModel("sdxl")
    args = webui.args(image=IMAGE, pooled=1.0)
    plain = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1).cond_steps()[0]
    guided = webui.txt2img(args, prompt="a cat", steps=1)
    vector, before = guided.cond_steps()[0]["vector"][0], plain["vector"][0]
    image = tokens_of(webui, VIT_BIGG)[0]
    assert torch.equal(vector[1280:], before[1280:])  # size and crop embeddings untouched
    torch.testing.assert_close(vector[:1280].norm(), before[:1280].norm())
    cosine = torch.nn.functional.cosine_similarity(vector[:1280], image, dim=0)
    torch.testing.assert_close(cosine, torch.tensor(1.0))
    assert "FlexDiffuse pooled: 1.0" in guided.processed.infotexts[0]


def test_pooled_guidance_alone_guides_and_is_recorded(webui):
    """Method weights 0 move no token, but the pooled vector still moves toward the image."""
    shared.sd_model = FakeSdModel("sdxl")
    args = webui.args(image=IMAGE, pooled=0.5, linear=0, clustered=0, threshold_mult=0)
    plain = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=1).cond_steps()[0]
    guided = webui.txt2img(args, prompt="a cat", steps=1)
    after = guided.cond_steps()[0]
    assert torch.equal(after["crossattn"], plain["crossattn"])
    assert not torch.equal(after["vector"], plain["vector"])
    assert "FlexDiffuse: True" in guided.processed.infotexts[0]
    assert "FlexDiffuse pooled: 0.5" in guided.processed.infotexts[0]


@pytest.mark.parametrize(
    ("family", "vit_l_only", "match"),
    [("sd1", False, "SDXL checkpoints only"), ("sdxl", True, "needs the OpenCLIP ViT-bigG")],
)
def test_pooled_guidance_where_it_cannot_apply(webui, family, vit_l_only, match):
    shared.sd_model = FakeSdModel(family)
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = vit_l_only
    with pytest.raises(FlexDiffuseError, match=match):
        webui.txt2img(webui.args(image=IMAGE, pooled=0.5), prompt="a cat", steps=1)
    # With weights that move no token, the pooled setting still asks for what cannot apply.
    args = webui.args(image=IMAGE, pooled=0.5, linear=0, clustered=0, threshold_mult=0)
    with pytest.raises(FlexDiffuseError, match=match):
        webui.txt2img(args, prompt="a cat", steps=1)


def test_keep_loaded_off_holds_one_tower_at_a_time(webui, monkeypatch):
    shared.sd_model = FakeSdModel("sdxl")
    shared.opts.data[settings.KEEP_LOADED] = False
    towers = script.RUNTIME.towers
    peak = []
    real = towers._encoder

    def track(*args, **kwargs):
        encoder = real(*args, **kwargs)
        peak.append(len(towers.loaded()))
        return encoder

    monkeypatch.setattr(towers, "_encoder", track)
    args = webui.args(image=IMAGE, image_2=gradient(seed=4), negative_image=gradient(seed=5))
    webui.txt2img(args, prompt="a cat", steps=1)
    assert peak == [1, 1]  # each tower loaded once for all three images, then unloaded
    assert towers.loaded() == []


def test_checkpoints_switch_between_jobs(webui):
    for family, width in (("sd1", 768), ("sdxl", 2048), ("sd2", 1024), ("sd1", 768)):
        shared.sd_model = FakeSdModel(family)
        job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
        cond = job.cond_steps()[0]
        assert (cond["crossattn"] if isinstance(cond, dict) else cond).shape[-1] == width


def test_a_single_safetensors_file_as_the_tower(webui, tmp_path):
    file = tmp_path / "CLIP-ViT-L-14.safetensors"
    save_file(load_file(str(webui.towers["vit_l"] / "model.safetensors")), str(file))
    shared.opts.data[VIT_L.setting] = str(file)
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.host.job_of(job.p).guides.prompt.parts[0].image_tokens.shape[-1] == 768
    assert str(file) in script.RUNTIME.towers.loaded()


def test_a_file_whose_tensors_do_not_fit_the_family(webui, tmp_path):
    file = tmp_path / "clip_h.safetensors"  # a ViT-H file set where ViT-L belongs
    save_file(load_file(str(webui.towers["vit_h"] / "model.safetensors")), str(file))
    shared.opts.data[VIT_L.setting] = str(file)
    with pytest.raises(FlexDiffuseError, match="width 1024"):
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)


VIT_L_ONLY_KEY = "FlexDiffuse SDXL ViT-L only"


def test_sdxl_vit_l_only_is_recorded_and_pasted_back_as_a_setting(webui):
    """It changes the image, so it is in the infotext; a paste sets it through the webui's
    override settings (the setting's ``infotext``), and a FlexDiffuse infotext without it
    means "off", so pasting an image made with both towers turns it off again."""
    shared.sd_model = FakeSdModel("sdxl")
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = True
    text = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1).processed.infotexts[0]
    assert f"{VIT_L_ONLY_KEY}: True" in text
    mapping = {info.infotext: key for key, info in shared.opts.data_labels.items() if info.infotext}
    assert mapping[VIT_L_ONLY_KEY] == settings.SDXL_VIT_L_ONLY

    def pasted(infotext: str) -> dict:
        params = infotext_utils.parse_generation_parameters(infotext)
        script_callbacks.infotext_pasted_callback(infotext, params)
        return params

    assert pasted(text)[VIT_L_ONLY_KEY] == "True"
    both = text.replace(f", {VIT_L_ONLY_KEY}: True", "")
    assert pasted(both)[VIT_L_ONLY_KEY] == "False"
    assert VIT_L_ONLY_KEY not in pasted("a cat\nSteps: 1, Sampler: Euler, CFG scale: 7")
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = False
    text = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1).processed.infotexts[0]
    assert VIT_L_ONLY_KEY not in text
