"""The Settings section and how the vision towers are loaded, kept and unloaded."""

from __future__ import annotations

import pytest
import torch
from modules import devices, shared

from flexdiffuse.encoder import ImageEncoder
from flexdiffuse.webui import prepare, script, settings
from flexdiffuse.webui.families import TOWERS, VIT_L
from flexdiffuse.webui.hosts.a1111 import SETTINGS_SECTION
from flexdiffuse.webui.vision_towers import VisionTowers
from tests.webui.conftest import gradient

IMAGE = gradient()


def test_settings_are_registered_in_their_own_section(webui):
    keys = [tower.setting for tower in TOWERS]
    keys += [settings.SDXL_VIT_L_ONLY, settings.KEEP_LOADED, settings.DEVICE]
    for key in keys:
        info = shared.opts.data_labels[key]
        assert info.section == SETTINGS_SECTION
        assert info.category_id == "sd"
        assert info.label
    assert shared.opts.data_labels[VIT_L.setting].default == "openai/clip-vit-large-patch14"
    assert shared.opts.data_labels[settings.KEEP_LOADED].default is True


def test_towers_stay_loaded_by_default(webui):
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == [str(webui.towers["vit_l"])]


def test_keep_loaded_off_unloads_after_encoding_and_reuses_encodings(install_webui):
    loads = []

    def loader(*args, **kwargs):
        loads.append(1)
        return ImageEncoder.from_pretrained(*args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    shared.opts.data[settings.KEEP_LOADED] = False
    gc_before = devices.gc_calls
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == []
    assert devices.gc_calls > gc_before
    assert loads == [1]
    loads.clear()
    webui.txt2img(webui.args(image=IMAGE), prompt="a dog", steps=1)
    assert loads == []  # the image's tokens were kept
    webui.txt2img(webui.args(image=gradient(seed=5)), prompt="a dog", steps=1)
    assert loads == [1]


def test_switching_keep_loaded_off_unloads_now(webui):
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded()
    shared.opts.set(settings.KEEP_LOADED, False)
    assert script.RUNTIME.towers.loaded() == []


@pytest.mark.parametrize(
    ("setting", "dtype"),
    [(settings.DEVICE_SAME, torch.float64), (settings.DEVICE_CPU, torch.float32)],
)
def test_compute_device_setting(webui, monkeypatch, setting, dtype):
    monkeypatch.setattr(devices, "dtype", torch.float64)  # the webui's dtype
    shared.opts.data[settings.DEVICE] = setting
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    encoder = script.RUNTIME.towers._encoders[str(webui.towers["vit_l"])]
    assert encoder.dtype == dtype
    assert script.RUNTIME.host.job_of(job.p).guides.prompt.parts[0].image_tokens.dtype == dtype


def test_an_empty_model_setting_means_the_default_id(webui):
    shared.opts.data[VIT_L.setting] = "  "
    part = prepare.guided_parts(script.RUNTIME, prepare.detect_family(shared.sd_model))[0]
    assert settings.tower_source(script.RUNTIME.host, part.tower) == VIT_L.default_source
