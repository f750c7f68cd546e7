"""What the Forge hosts do differently from A1111, in the fake Forge hosts (see conftest.py).

Each test runs on Forge 2 and on old Forge unless it names one; ``forge_host`` is the
host's name ("forge2", "oldforge").
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from modules import call_queue, processing, shared

from flexdiffuse import GuidanceParams, ImageEncoder
from flexdiffuse.webui import hosts, script
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.families import detect_family
from flexdiffuse.webui.hosts.a1111 import A1111Host
from flexdiffuse.webui.hosts.forge import REVISION, REVISION_IGNORE_PROMPT, ForgeHost
from flexdiffuse.webui.hosts.forge2 import Forge2Host
from flexdiffuse.webui.hosts.oldforge import OldForgeHost
from flexdiffuse.webui.infotext import ENABLED_KEY, NOTE_KEY
from flexdiffuse.webui.job import NO_NEGATIVE_PROMPT
from tests.webui.conftest import gradient
from tests.webui.test_preview_panel import click_preview
from tests.webui.test_sampling import PARAMS, assert_guided, run_pair

IMAGE = gradient()


@pytest.fixture
def tokens(tiny_towers) -> torch.Tensor:
    return ImageEncoder.from_pretrained(tiny_towers["vit_l"])(IMAGE)


def memory():
    """The fake host's memory manager module."""
    return sys.modules.get("backend.memory_management") or sys.modules.get(
        "ldm_patched.modules.model_management"
    )


def vars_of(params: GuidanceParams = PARAMS) -> dict:
    return {name: getattr(params, name) for name in params.__dataclass_fields__}


def only(host: str, forge_host: str) -> None:
    if forge_host != host:
        pytest.skip(f"{host} only")


def test_each_backend_is_detected_by_its_modules(webui, forge_host):
    expected = {"forge2": Forge2Host, "oldforge": OldForgeHost}[forge_host]
    host = script.RUNTIME.host
    assert type(host) is expected
    assert host.unsupported is None
    assert host.name == {"forge2": "WebUI Forge", "oldforge": "Forge Classic"}[forge_host]


def test_a1111_is_detected_without_modules_forge():
    assert type(hosts.detect()).__name__ == "A1111Host"


# ------------------------------------------------------------------ CFG scale 1


def test_cfg_scale_1_guides_the_prompt(webui, tokens, forge_host):
    plain, guided = run_pair(webui, prompt="a cat", steps=2, cfg_scale=1)
    if forge_host == "forge2":
        assert all(call.text_uncond is None for call in guided.p.unet_calls)
    assert_guided(plain, guided, tokens)
    assert guided.p.extra_generation_params[ENABLED_KEY] == "True"


def test_a_negative_image_without_negative_prompt_is_skipped_with_a_note(webui, forge_host):
    """Forge 2 drops the negative prompt before the callbacks, old Forge's sampler after them:
    either way the negative image guides nothing and is not claimed."""
    job = {"prompt": "a cat", "negative_prompt": "blurry", "steps": 2, "cfg_scale": 1}
    guided = webui.txt2img(webui.args(image=None, negative_image=IMAGE), **job)
    assert guided.p.extra_generation_params[ENABLED_KEY] == "False"  # guided nothing
    assert NO_NEGATIVE_PROMPT in guided.p.extra_generation_params[NOTE_KEY]
    assert NO_NEGATIVE_PROMPT in guided.processed.comments


def test_prompt_and_negative_image_at_cfg_1_guide_the_prompt(webui, tokens, forge_host):
    job = {"prompt": "a cat", "negative_prompt": "blurry", "steps": 2, "cfg_scale": 1}
    plain = webui.txt2img(webui.args(enabled=False), **job)
    guided = webui.txt2img(webui.args(image=IMAGE, negative_image=IMAGE, **vars_of()), **job)
    assert_guided(plain, guided, tokens)
    assert guided.p.extra_generation_params[ENABLED_KEY] == "True"
    assert guided.p.extra_generation_params[NOTE_KEY] == NO_NEGATIVE_PROMPT


def step_params(cfg_scale=7.0, weights=(1.0,), **p) -> SimpleNamespace:
    """A step callback's params as the hosts' denoisers hold them (one prompt)."""
    cond = SimpleNamespace(batch=[[SimpleNamespace(weight=w) for w in weights]])
    sampler = SimpleNamespace(sampler_extra_args={"cond": cond, "cond_scale": cfg_scale})
    p = SimpleNamespace(**({"cfg_scale": cfg_scale, "is_hr_pass": False, "sd_model": None} | p))
    return SimpleNamespace(denoiser=SimpleNamespace(sampler=sampler, p=p))


def unet_options(**options) -> SimpleNamespace:
    unet = SimpleNamespace(model_options=options)
    return SimpleNamespace(forge_objects=SimpleNamespace(unet=unet))


@pytest.mark.parametrize(
    ("params", "forge", "a1111"),
    [
        (step_params(1.0), True, True),
        (step_params(1.0 + 1e-12), True, True),  # math.isclose, as the hosts compare
        (step_params(7.0), False, False),
        (step_params(1.0, weights=(1.0, 1.0)), True, False),  # A1111: AND weights sum to 2
        (step_params(1.0, weights=(0.5, 0.5)), True, True),
        (step_params(7.0, is_hr_pass=True, hr_cfg=1.0), True, True),  # reForge, Forge 2
        (step_params(1.0, is_hr_pass=True, hr_cfg=7.0), False, False),
        (step_params(1.0, is_hr_pass=True), True, True),  # Classic, A1111: no hr_cfg
        (step_params(1.0, sd_model=unet_options(disable_cfg1_optimization=True)), False, True),
        (step_params(1.0, sd_model=unet_options()), True, True),
    ],
)
def test_a_negative_prompt_is_ignored_where_the_hosts_sampler_ignores_it(params, forge, a1111):
    """Forge's sampling_function drops it at CFG scale 1; A1111's CFG cancels it there."""
    assert ForgeHost()._negative_ignored(params) is forge
    assert A1111Host()._negative_ignored(params) is a1111


def test_hires_pass_at_hr_cfg_1_guides_the_prompt_and_the_first_pass_negatives(
    webui, tokens, forge_host
):
    only("forge2", forge_host)
    job = {"prompt": "a cat", "negative_prompt": "blurry", "steps": 2, "enable_hr": True}
    job |= {"hr_prompt": "a cat, detailed", "hr_cfg": 1.0}
    plain = webui.txt2img(webui.args(enabled=False), **job)
    guided = webui.txt2img(webui.args(image=IMAGE, negative_image=IMAGE, **vars_of()), **job)
    assert_guided(plain, guided, tokens, hr=True)
    first = [call for call in guided.p.unet_calls if not call.is_hr_pass]
    before = [call for call in plain.p.unet_calls if not call.is_hr_pass]
    assert not torch.equal(first[0].text_uncond, before[0].text_uncond)  # negative guided
    assert all(call.text_uncond is None for call in guided.p.unet_calls if call.is_hr_pass)
    assert guided.p.extra_generation_params[NOTE_KEY] == NO_NEGATIVE_PROMPT


# ------------------------------------------------------------------ models and prompts


def test_the_concepts_prompt_is_encoded_at_the_jobs_clip_skip(webui, forge_host):
    only("forge2", forge_host)
    shared.opts.data["CLIP_stop_at_last_layers"] = 2
    webui.txt2img(webui.args(image=IMAGE, concepts="a cat"), prompt="a cat", steps=1)
    assert ["a cat"] in shared.sd_model.encoded
    assert shared.sd_model.clip_skips[-1] == 2  # set again before the extra prompt


def test_the_preview_loads_forges_first_checkpoint(webui, forge_host):
    only("forge2", forge_host)
    from modules import sd_models

    shared.sd_model = sd_models.FakeInitialModel()
    assert script.RUNTIME.host.sd_model() is None  # Forge 2's placeholder
    page = click_preview(webui, "a red cat", webui.args(image=IMAGE))
    assert sd_models.reloads == 1
    assert "<td>red</td>" in page


def test_the_preview_says_when_forge_cannot_load_a_checkpoint(webui, forge_host, monkeypatch):
    only("forge2", forge_host)
    from modules import sd_models

    def no_checkpoint():
        raise ValueError("You do not have any model!")

    monkeypatch.setattr(sd_models, "forge_model_reload", no_checkpoint)
    shared.sd_model = sd_models.FakeInitialModel()
    page = click_preview(webui, "a red cat", webui.args(image=IMAGE))
    assert "could not load the selected checkpoint (You do not have any model!)" in page


def test_reforge_dynamic_clip_skip_guides_each_steps_own_prompt_set(webui, tokens, forge_host):
    only("oldforge", forge_host)
    shared.opts.data["dynamic_clip_skip_enabled"] = True
    plain, guided = run_pair(webui, prompt="a cat", steps=4)
    steps = plain.cond_steps()
    assert not torch.equal(steps[0], steps[-1])  # the sets differ from step to step
    assert_guided(plain, guided, tokens)


@pytest.mark.parametrize(
    ("ignore_prompt", "note"), [(False, REVISION), (True, REVISION_IGNORE_PROMPT)]
)
def test_controlnet_revision_is_noted(webui, monkeypatch, ignore_prompt, note):
    revision = [{"cond": None, "weight": 1.0, "noise_aug": 0.0, "ignore_prompt": ignore_prompt}]
    options = shared.sd_model.forge_objects.unet.model_options
    monkeypatch.setitem(options, "revision_conditions", revision)
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=2)
    assert note in job.processed.comments
    assert job.p.extra_generation_params[NOTE_KEY] == note


@pytest.mark.parametrize(
    ("engine", "name"),
    [
        ("Flux", "Flux"),
        ("Chroma", "Chroma"),
        ("StableDiffusion3", "SD 3.5"),
        ("ZImage", "Z-Image"),
        ("QwenImage", "Qwen-Image"),
        ("WanSomethingNew", "WanSomethingNew"),
    ],
)
def test_forges_other_model_families_are_refused_by_name(engine, name):
    model = type(engine, (), {"is_sd3": engine == "StableDiffusion3", "is_sdxl": False})()
    with pytest.raises(FlexDiffuseError, match=f"cannot guide {name} checkpoints"):
        detect_family(model)


# ------------------------------------------------------------------ errors in the UI


def ui_txt2img(webui, args, **job):
    """A txt2img click: the UI's error handler around Forge's main thread around the job."""
    from modules_forge import main_thread

    def txt2img():
        def txt2img_function():
            processed = webui.txt2img(args, **job).processed
            return processed.images, "", "", processed.comments

        return main_thread.run_and_wait_result(txt2img_function)

    return call_queue.wrap_gradio_call_no_job(txt2img)()


def test_a_bad_job_shows_flexdiffuses_message_in_the_ui(webui):
    outputs = ui_txt2img(webui, webui.args(image=None), prompt="a cat", steps=1)
    assert "FlexDiffuseError: FlexDiffuse is enabled but has no guidance image" in outputs[-1]


def test_a_failed_guide_shows_its_message_in_the_ui(webui, monkeypatch):
    from flexdiffuse.guidance import ConditioningGuide

    def explode(self, cond, pure=False):
        raise RuntimeError("tower exploded")

    monkeypatch.setattr(ConditioningGuide, "apply", explode)
    outputs = ui_txt2img(webui, webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert "RuntimeError: tower exploded" in outputs[-1]


def test_old_forge_ui_would_hide_the_message_without_flexdiffuse(webui, forge_host):
    """The fake reproduces the host's problem: undo FlexDiffuse's adapter, the UI shows
    only a TypeError."""
    only("oldforge", forge_host)
    from modules_forge import main_thread

    main_thread.run_and_wait_result = main_thread.run_and_wait_result.__wrapped__
    outputs = ui_txt2img(webui, webui.args(image=None), prompt="a cat", steps=1)
    assert "TypeError: &#x27;NoneType&#x27; object is not iterable" in outputs[-1]


def test_other_errors_stay_the_hosts(webui, forge_host, monkeypatch):
    only("oldforge", forge_host)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(processing, "create_infotext", broken)
    outputs = ui_txt2img(webui, webui.args(enabled=False), prompt="a cat", steps=1)
    assert "TypeError" in outputs[-1]  # as old Forge shows any failure, unchanged


def test_the_adapter_is_installed_once(webui, forge_host):
    from modules_forge import main_thread

    run = main_thread.run_and_wait_result
    script.RUNTIME.host.on_load()  # the webui reloads its scripts
    assert main_thread.run_and_wait_result is run
    assert getattr(run, "flexdiffuse_raises", False) == (forge_host == "oldforge")


def test_forge_2_creates_its_temporary_folder_for_send_to(webui, forge_host, tmp_path):
    """Neo's gr.Image saves a PIL value it is sent into ``opts.temp_dir``, which Neo creates
    only when the setting changes: Send to img2img failed as a whole without it."""
    only("forge2", forge_host)
    folder = tmp_path / "webui-tmp"
    shared.opts.data["temp_dir"] = str(folder)
    script.RUNTIME.host.on_load()
    assert folder.is_dir()


# ------------------------------------------------------------------ memory


def test_room_is_asked_of_forges_memory_manager_before_a_tower_goes_to_the_gpu(webui):
    host = script.RUNTIME.host
    gpu = torch.device("cuda", 0)
    host.make_room(1000, gpu)
    assert memory().freed == [(1000 + memory().minimum_inference_memory(), gpu)]
    host.make_room(1000, torch.device("cpu"))
    assert len(memory().freed) == 1
    assert host.tower_park(gpu) == torch.device("cpu")
    assert host.tower_park(torch.device("cpu")) is None


def test_fp8_webui_dtype_gives_fp16_towers(webui, monkeypatch):
    from modules import devices

    monkeypatch.setattr(devices, "dtype", torch.float8_e4m3fn)
    assert script.RUNTIME.host.tower_device_and_dtype(False)[1] == torch.float16
