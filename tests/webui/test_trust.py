"""A guided job is guided, or it says why: issue 10's defects, each shown in the fake host.

Settings that move no token, another extension replacing ``p.sample``, a checkpoint switch
during the job, the preview's use of the job queue, large images, and the notes an API
client gets.
"""

from __future__ import annotations

import base64
import io
import types

import pytest
import torch
from modules import call_queue, scripts, shared
from PIL import Image
from sdmodel import FakeSdModel

from flexdiffuse import __version__
from flexdiffuse.engine import PURE_IMAGE_WARNING
from flexdiffuse.images import KEEP_SIDE
from flexdiffuse.webui import script, settings
from flexdiffuse.webui.args import read_image
from flexdiffuse.webui.infotext import NOTE_KEY, VERSION_KEY
from flexdiffuse.webui.vision_towers import VisionTowers
from tests.webui.conftest import gradient, use_checkpoint
from tests.webui.test_preview_panel import click_preview

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE = gradient()


def unguided_and(webui, args, **job):
    job.setdefault("prompt", "a cat")
    job.setdefault("steps", 2)
    return webui.txt2img(webui.args(enabled=False), **job), webui.txt2img(args, **job)


@pytest.mark.parametrize(
    "values",
    [
        {"image_weight": 0},
        {"linear": 0, "clustered": 0, "threshold_mult": 0},
        {"max_guidance": 0, "linear": 0.5, "clustered": 0.2, "threshold_mult": 0.3},
    ],
    ids=["image-weight-0", "method-weights-0", "max-0"],
)
def test_settings_that_move_no_token_say_so_and_claim_nothing(webui, values):
    plain, job = unguided_and(webui, webui.args(image=IMAGE, **values))
    for a, b in zip(plain.cond_steps(), job.cond_steps(), strict=True):
        assert torch.equal(a, b)
    infotext = job.processed.infotexts[0]
    assert "FlexDiffuse: False" in infotext
    assert "FlexDiffuse: True" not in infotext
    assert f"{NOTE_KEY}: " in infotext
    assert "guided nothing" in job.processed.comments
    for name, value in values.items():  # the settings are recorded all the same
        assert name != "image_weight" or "FlexDiffuse image weight: 0.0" in infotext
        assert value is not None


def test_negative_weights_move_tokens_even_with_max_0(webui):
    _, job = unguided_and(webui, webui.args(image=IMAGE, max_guidance=0, linear=-0.5))
    assert "FlexDiffuse: True" in job.processed.infotexts[0]


def test_an_empty_prompt_is_guided_whatever_the_weights(webui):
    args = webui.args(image=IMAGE, linear=0, clustered=0, threshold_mult=0)
    _, job = unguided_and(webui, args, prompt="")
    assert "FlexDiffuse: True" in job.processed.infotexts[0]
    assert PURE_IMAGE_WARNING in job.processed.comments
    assert PURE_IMAGE_WARNING in job.processed.infotexts[0]  # API clients read infotext


class FreeInitLike(scripts.Script):
    """An extension that replaces ``p.sample`` without calling the previous one."""

    def process(self, p, *args):
        own = type(p).sample

        def sample(self, *a, **k):
            return own(self, *a, **k)

        p.sample = types.MethodType(sample, p)


def add_script_after_flexdiffuse(webui, script):
    runner = webui.runners[False]
    script.filename = "freeinit.py"
    runner.add(script, False, [])


def test_guidance_does_not_depend_on_the_sample_wrapper(webui):
    plain = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=2)
    add_script_after_flexdiffuse(webui, FreeInitLike())
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=2)
    assert job.p.sample.__func__.__name__ == "sample"  # the wrapper was replaced
    assert script.RUNTIME.host.job_of(job.p).guided_steps == 2
    assert not torch.equal(job.cond_steps()[0], plain.cond_steps()[0])
    assert "FlexDiffuse: True" in job.processed.infotexts[0]


def test_without_the_wrapper_an_error_stops_sampling_and_unclaims_the_image(webui):
    add_script_after_flexdiffuse(webui, FreeInitLike())
    concepts = " ".join(f"c{i}" for i in range(80))  # over one chunk: fails at build time
    job = webui.txt2img(webui.args(image=IMAGE, concepts=concepts), prompt="a cat", steps=3)
    assert shared.state.interrupted
    infotext = job.processed.infotexts[0]
    assert "FlexDiffuse: False" in infotext
    assert "must fit in one" in job.processed.comments
    assert "FlexDiffuse stopped" in infotext


def refiner_job(webui, vit_l_only):
    """The base SDXL's steps and the refiner's, unguided and guided."""
    use_checkpoint("sdxl")
    shared.opts.data[settings.SDXL_VIT_L_ONLY] = vit_l_only
    refiner = FakeSdModel("sdxl", width=1280)
    job = {"prompt": "a cat", "steps": 4, "refiner_switch_at": 0.5}
    plain = webui.txt2img(webui.args(enabled=False), refiner_model=refiner, **job)
    use_checkpoint("sdxl")
    base = shared.sd_model
    guided = webui.txt2img(webui.args(image=IMAGE), refiner_model=refiner, **job)
    assert shared.sd_model is refiner is not base
    before, after = plain.cond_steps(), guided.cond_steps()
    assert not torch.equal(before[0]["crossattn"], after[0]["crossattn"])  # base: guided
    return before[2:], after[2:], guided


def test_the_refiner_is_guided_by_the_vit_bigg_tower(webui):
    before, after, guided = refiner_job(webui, vit_l_only=False)
    for a, b in zip(before, after, strict=True):
        assert not torch.equal(a["crossattn"], b["crossattn"])
    assert "stopped" not in guided.processed.comments


def test_the_refiner_with_vit_l_only_stops_guidance_with_a_note(webui):
    before, after, guided = refiner_job(webui, vit_l_only=True)
    for a, b in zip(before, after, strict=True):  # refiner: left alone
        assert torch.equal(a["crossattn"], b["crossattn"])
    note = "FlexDiffuse stopped guiding part-way"
    assert note in guided.processed.comments
    assert "guide only the ViT-L part" in guided.processed.comments
    assert f"{NOTE_KEY}: " in guided.processed.infotexts[0]


def test_a_checkpoint_switch_to_a_supported_model_gets_its_own_towers(webui):
    use_checkpoint("sd1")
    other = FakeSdModel("sd1")
    job = {"prompt": "a cat", "steps": 4, "refiner_switch_at": 0.5, "refiner_model": other}
    guided = webui.txt2img(webui.args(image=IMAGE), **job)
    assert script.RUNTIME.host.job_of(guided.p).guided_steps == 4
    assert "stopped" not in guided.processed.comments


class WatchedLock:
    """The job queue's lock, recording whether it is held."""

    def __init__(self) -> None:
        self.held = 0

    def __enter__(self):
        self.held += 1

    def __exit__(self, *exc):
        self.held -= 1


def test_the_preview_never_holds_the_job_queue_while_a_tower_loads(install_webui, monkeypatch):
    lock = WatchedLock()
    monkeypatch.setattr(call_queue, "queue_lock", lock)
    held_while_loading = []

    def loader(*args, **kwargs):
        from flexdiffuse.encoder import ImageEncoder

        held_while_loading.append(lock.held)
        return ImageEncoder.from_pretrained(*args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    page = click_preview(webui, "a cat", webui.args(image=IMAGE))
    assert "Computed in" in page
    assert held_while_loading == [0]


def test_the_preview_without_a_checkpoint_explains(webui):
    shared.sd_model = None
    page = click_preview(webui, "a cat", webui.args(image=IMAGE))
    assert "No Stable Diffusion checkpoint is loaded" in page


def jpeg_base64(width: int, height: int) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 90)).save(buffer, "JPEG", quality=80)
    return base64.b64encode(buffer.getvalue()).decode()


def test_large_images_keep_only_what_a_tower_needs():
    image = read_image(jpeg_base64(4000, 3000))
    assert image.pixels.size == (KEEP_SIDE, KEEP_SIDE)
    assert image.pixels.mode == "RGB"
    again = read_image(jpeg_base64(4000, 3000))
    assert again.digest == image.digest


def test_guided_images_record_the_version(webui):
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert f"{VERSION_KEY}: {__version__}" in job.processed.infotexts[0]


def test_a_tower_that_cannot_load_is_a_flexdiffuse_error(webui):
    from flexdiffuse.webui.errors import FlexDiffuseError
    from flexdiffuse.webui.families import VIT_L

    shared.opts.data[VIT_L.setting] = "/nonexistent/tower"
    with pytest.raises(FlexDiffuseError, match="does not exist"):
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
