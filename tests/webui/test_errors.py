"""Every way a guided job can be wrong stops it with a clear message, never unguided.

The message reaches the user because the job raises from ``process_images`` (A1111 shows
``<type>: <message>`` in the UI and puts it in the API's error body); afterwards the webui
runs the next job normally.
"""

from __future__ import annotations

import base64
import functools
import importlib.machinery
import io
import sys
import types

import pytest
from modules import shared
from PIL import Image
from sdmodel import FakeSdModel

from flexdiffuse import ImageEncoder
from flexdiffuse.guidance import ConditioningGuide
from flexdiffuse.webui import hosts, script
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.families import VIT_L
from flexdiffuse.webui.vision_towers import VisionTowers
from tests.webui.conftest import gradient

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE = gradient()


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def assert_stops(webui, args, match, error=FlexDiffuseError, **job):
    job.setdefault("prompt", "a cat")
    job.setdefault("steps", 2)
    with pytest.raises(error, match=match) as caught:
        webui.txt2img(args, **job)
    assert caught.value.__traceback__ is not None
    return str(caught.value)


def test_the_webui_runs_the_next_job_normally_after_a_failed_one(webui):
    for bad in ([True, None], [True, "junk"], [{"image": png_base64(IMAGE), "linear": 7}]):
        with pytest.raises(FlexDiffuseError):
            webui.txt2img(bad, prompt="a cat", steps=2)
        ok = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=2)
        plain = webui.txt2img(webui.args(enabled=False), prompt="a cat", steps=2)
        assert len(ok.cond_steps()) == 2
        assert not ok.cond_steps()[0].equal(plain.cond_steps()[0])


def test_enabled_without_an_image(webui):
    message = assert_stops(webui, webui.args(image=None), "no guidance image")
    assert "Drop an image" in message


@pytest.mark.parametrize(
    ("image", "match"),
    [
        ("not base64 at all!", "not valid base64"),
        (base64.b64encode(b"hello, not an image").decode(), "could not be read as an image"),
        (12345, "must be an image or a base64-encoded image file"),
    ],
)
def test_unreadable_images(webui, image, match):
    assert_stops(webui, webui.args(image=image), match)


def test_huge_image_is_refused_from_its_header(webui, monkeypatch):
    from flexdiffuse.webui import args

    monkeypatch.setattr(args, "MAX_IMAGE_PIXELS", 1000)
    message = assert_stops(webui, webui.args(image=png_base64(gradient(50, 40))), "Downscale it")
    assert "50x40" in message


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"linear": 3.0}, r"linear \(Linear\) must be a number from -1 to 1, got 3.0"),
        ({"order": "best"}, r"order \(Mapping priority\) must be one of"),
        ({"reuse": "maybe"}, "must be true or false"),
        ({"max_guidance": float("nan")}, "max_guidance"),
    ],
)
def test_out_of_range_values_from_the_api(webui, params, match):
    assert_stops(webui, [{"image": png_base64(IMAGE), **params}], match)


def test_unknown_api_names_are_listed(webui):
    message = assert_stops(webui, [{"image": png_base64(IMAGE), "lineer": 0.3}], "'lineer'")
    assert "linear" in message


def test_unsupported_model_family(webui):
    shared.sd_model = FakeSdModel("sd3")
    with pytest.raises(FlexDiffuseError, match="cannot guide SD 3 checkpoints"):
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)


def test_a_model_that_cannot_be_downloaded(install_webui):
    offline = functools.partial(ImageEncoder.from_pretrained, local_files_only=True)
    webui = install_webui(VisionTowers(offline))
    shared.opts.data[VIT_L.setting] = "someone/not-a-clip-model"
    message = assert_stops(webui, webui.args(image=IMAGE), "someone/not-a-clip-model")
    assert "local folder" in message


def test_a_vision_model_of_the_wrong_width(webui):
    shared.opts.data[VIT_L.setting] = str(webui.towers["vit_h"])  # 1024-wide tokens
    message = assert_stops(webui, webui.args(image=IMAGE), "width 1024")
    assert "CLIP ViT-L/14" in message
    assert "Settings > FlexDiffuse" in message


def test_concepts_longer_than_one_chunk(webui):
    concepts = " ".join(f"c{i}" for i in range(80))
    assert_stops(webui, webui.args(image=IMAGE, concepts=concepts), "must fit in one")


@pytest.mark.a1111_only  # a Forge fake is recognised
def test_an_unrecognised_forge_is_refused_clearly(webui, monkeypatch):
    forge = types.ModuleType("modules_forge")
    forge.__spec__ = importlib.machinery.ModuleSpec("modules_forge", None)
    monkeypatch.setitem(sys.modules, "modules_forge", forge)
    assert hosts.detect().unsupported == hosts.UNKNOWN_FORGE  # no backend/, no ldm_patched/
    monkeypatch.setattr(script.RUNTIME.host, "unsupported", hosts.UNKNOWN_FORGE)
    message = assert_stops(webui, webui.args(image=IMAGE), "does not recognise this Forge")
    assert "Forge Classic" in message


def test_a_failure_during_sampling_stops_the_job(webui, monkeypatch):
    calls = []

    def fail_on_second(self, cond, pure=False):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("tower exploded")
        return cond.clone()

    monkeypatch.setattr(ConditioningGuide, "apply", fail_on_second)
    job = {"prompt": "a cat", "enable_hr": True, "hr_prompt": "a dog", "steps": 3}
    with pytest.raises(RuntimeError, match="tower exploded"):
        webui.txt2img(webui.args(image=IMAGE), **job)
    assert shared.state.interrupted  # the second pass was stopped at once


def test_a_disabled_panel_with_stale_values_never_fails(webui):
    job = webui.txt2img([False, "garbage", 99.0], prompt="a cat", steps=1)
    assert len(job.cond_steps()) == 1
    assert job.p.extra_generation_params == {}


def test_a_truncated_image_file(webui):
    data = base64.b64decode(png_base64(gradient(64, 64)))
    truncated = base64.b64encode(data[: len(data) // 2]).decode()
    assert_stops(webui, webui.args(image=truncated), "could not be read as an image")
