"""The Settings section and how the vision towers are loaded, kept and unloaded."""

from __future__ import annotations

import pytest
import torch
from modules import devices, shared

from flexdiffuse.webui import host, prepare
from flexdiffuse.webui.families import TOWERS, VIT_L
from flexdiffuse.webui.job import job_of
from tests.webui.conftest import gradient

IMAGE = gradient()


def test_settings_are_registered_in_their_own_section(webui):
    keys = [tower.setting for tower in TOWERS]
    keys += [host.SDXL_VIT_L_ONLY, host.KEEP_LOADED, host.DEVICE]
    for key in keys:
        info = shared.opts.data_labels[key]
        assert info.section == host.SETTINGS_SECTION
        assert info.label
    assert shared.opts.data_labels[VIT_L.setting].default == "openai/clip-vit-large-patch14"
    assert shared.opts.data_labels[host.KEEP_LOADED].default is True


def test_towers_stay_loaded_by_default(webui):
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert prepare.VISION_TOWERS.loaded() == [str(webui.towers["vit_l"])]


def test_keep_loaded_off_unloads_after_encoding_and_reuses_encodings(webui, monkeypatch):
    shared.opts.data[host.KEEP_LOADED] = False
    gc_before = devices.gc_calls
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert prepare.VISION_TOWERS.loaded() == []
    assert devices.gc_calls > gc_before
    loads = []
    real = prepare.VISION_TOWERS._loader
    monkeypatch.setattr(
        prepare.VISION_TOWERS, "_loader", lambda *a, **k: loads.append(1) or real(*a, **k)
    )
    webui.txt2img(webui.args(image=IMAGE), prompt="a dog", steps=1)
    assert loads == []  # the image's tokens were kept
    webui.txt2img(webui.args(image=gradient(seed=5)), prompt="a dog", steps=1)
    assert loads == [1]


def test_switching_keep_loaded_off_unloads_now(webui):
    webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert prepare.VISION_TOWERS.loaded()
    shared.opts.set(host.KEEP_LOADED, False)
    assert prepare.VISION_TOWERS.loaded() == []


@pytest.mark.parametrize(
    ("setting", "dtype"), [(host.DEVICE_SAME, torch.float64), (host.DEVICE_CPU, torch.float32)]
)
def test_compute_device_setting(webui, monkeypatch, setting, dtype):
    monkeypatch.setattr(devices, "dtype", torch.float64)  # the webui's dtype
    shared.opts.data[host.DEVICE] = setting
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    encoder = prepare.VISION_TOWERS._encoders[str(webui.towers["vit_l"])]
    assert encoder.dtype == dtype
    assert job_of(job.p).guidance.prompt.towers[0].image_tokens.dtype == dtype


def test_an_empty_model_setting_means_the_default_id(webui):
    shared.opts.data[VIT_L.setting] = "  "
    slot = prepare.guided_slots(prepare.detect_family(shared.sd_model))[0]
    assert prepare.tower_source(slot) == VIT_L.default_model
