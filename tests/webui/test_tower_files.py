"""Vision towers in the webui: files found on disk, the settings' dropdowns, progress text in
the page, stopping a load, and one copy per tower in memory.

Tiny random towers with the real token widths are put where the webui and its extensions keep
CLIP vision files, in the test's own fake webui folders.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import pytest
from modules import devices, paths, shared

from flexdiffuse.checkpoints import convert_command
from flexdiffuse.encoder import ImageEncoder
from flexdiffuse.towers import is_default_source, is_local_source, source_key
from flexdiffuse.webui import script, settings
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.families import VIT_BIGG, VIT_H, VIT_L
from flexdiffuse.webui.hosts.a1111 import A1111Host
from flexdiffuse.webui.vision_towers import VisionTowers
from tests.pickles import bypass_weights_only, opened_files, pickles_in, plant, plant_everywhere
from tests.test_hub_subfolder import hub_snapshot
from tests.webui.conftest import gradient, move_webui, use_checkpoint
from tests.webui.test_preview_panel import click_preview

IMAGE = gradient()


def put_file(tiny_towers: dict[str, Path], key: str, path: Path) -> Path:
    """A tiny tower's weights as one .safetensors file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(tiny_towers[key] / "model.safetensors", path)
    return path


def models() -> Path:
    return Path(paths.models_path)


def use_defaults() -> None:
    for tower in (VIT_L, VIT_H, VIT_BIGG):
        shared.opts.data[tower.setting] = tower.default_source


@pytest.fixture
def loads(install_webui):
    """The webui with a loader that counts loads; every tower setting at its default."""
    calls: list[str] = []

    def loader(source, *args, **kwargs):
        calls.append(source)
        return ImageEncoder.from_pretrained(source, *args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    use_defaults()
    return SimpleNamespace(webui=webui, calls=calls)


# ----------------------------------------------------------------- where the host looks


def test_the_host_looks_where_the_webui_and_extensions_keep_clip_vision_files(
    tmp_path, monkeypatch
):
    root = move_webui(tmp_path / "webui", monkeypatch)
    (root / "models" / "clip_vision").mkdir(parents=True)
    (root / "models" / "ClipVision").symlink_to(root / "models" / "clip_vision")
    controlnet = root / "extensions" / "sd-webui-controlnet" / "annotator" / "downloads"
    (controlnet / "clip_vision").mkdir(parents=True)
    monkeypatch.setattr(shared, "opts", shared.Options())
    folders = A1111Host().tower_folders()
    assert folders == [
        root / "models" / "clip_vision",  # ClipVision is the same folder here: listed once
        controlnet / "clip_vision",
        root / "models" / "ControlNetPreprocessor",  # Forge's built-in ControlNet
    ]
    # The ControlNet extension's own models folder (its setting, else its flag), and
    # Forge's preprocessor folder as Forge set it.
    shared.opts.data["control_net_modules_path"] = "cn-models"
    forge = SimpleNamespace(preprocessor_dir=str(tmp_path / "forge-preprocessors"))
    monkeypatch.setitem(sys.modules, "modules_forge.shared", forge)
    folders = A1111Host().tower_folders()
    assert root / "cn-models" / "clip_vision" in folders
    assert folders[-1] == tmp_path / "forge-preprocessors"
    del shared.opts.data["control_net_modules_path"]
    monkeypatch.setattr(shared, "cmd_opts", SimpleNamespace(controlnet_annotator_models_path="/x"))
    assert Path("/x/clip_vision") in A1111Host().tower_folders()


def test_extra_folders_come_after_the_hosts(webui, tmp_path):
    comfy = tmp_path / "ComfyUI" / "models" / "clip_vision"
    shared.opts.data[settings.TOWER_FOLDERS] = f" {comfy} ;; ~/more "
    folders = settings.tower_folders(script.RUNTIME.host)
    assert folders[-2:] == [comfy, Path("~/more").expanduser()]
    assert folders[0] == models() / "clip_vision"


@pytest.mark.every_host
def test_no_pickle_where_towers_are_looked_for_is_opened(
    install_webui, tiny_towers, tmp_path, monkeypatch, caplog
):
    """The Settings page, default jobs of every family and the preview, with code-running
    pickles in every folder the host scans (and in extra folders), on a torch whose
    weights_only check is bypassed: no pickle is opened, and the jobs are guided."""
    by_default = {t.default_source: str(tiny_towers[t.name]) for t in (VIT_L, VIT_H, VIT_BIGG)}

    def loader(source, *args, **kwargs):  # the defaults, as if downloaded
        return ImageEncoder.from_pretrained(by_default.get(source, source), *args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    use_defaults()
    host = script.RUNTIME.host
    controlnet = Path(paths.extensions_dir) / "sd-webui-controlnet" / "annotator" / "downloads"
    (controlnet / "clip_vision").mkdir(parents=True)
    shared.opts.data["control_net_modules_path"] = "cn-models"
    comfy = tmp_path / "ComfyUI" / "models" / "clip_vision"
    shared.opts.data[settings.TOWER_FOLDERS] = str(comfy)
    folders = settings.tower_folders(host)
    root = Path(paths.data_path)
    assert {
        models() / "clip_vision",
        controlnet / "clip_vision",
        root / "cn-models" / "clip_vision",
        models() / "ControlNetPreprocessor",
        comfy,
    } <= set(folders)
    marker = tmp_path / "code-ran"
    for folder in folders:
        plant_everywhere(folder, marker)
    reads = bypass_weights_only(monkeypatch)
    with opened_files() as opened, caplog.at_level(logging.WARNING):
        for tower in (VIT_L, VIT_H, VIT_BIGG):  # the Settings page, built and refreshed
            info = shared.opts.data_labels[tower.setting]
            info.refresh()
            assert info.component_args() == {"choices": [tower.default_source]}
        for family in ("sd1", "sd2", "sdxl"):
            use_checkpoint(family)
            job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
            assert "FlexDiffuse: True" in job.processed.infotexts[0], family
        page = click_preview(webui, "a cat", webui.args(image=IMAGE))
        assert "flexdiffuse-position" in page
    assert not marker.exists()
    assert reads == []
    assert pickles_in(opened) == []
    assert not any(is_local_source(key) for key in script.RUNTIME.towers.loaded())
    assert any("not opening the pickles" in r.message for r in caplog.records)


# ----------------------------------------------------------------- defaults and found files


def test_a_default_setting_uses_a_fitting_file_found_on_disk(loads, tiny_towers, caplog):
    put_file(tiny_towers, "vit_h", models() / "clip_vision" / "a-vit-h.safetensors")
    vit_l = put_file(tiny_towers, "vit_l", models() / "clip_vision" / "b-vit-l.safetensors")
    with caplog.at_level(logging.INFO):
        job = loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert job.processed is not None
    assert loads.calls == [str(vit_l)]  # the ViT-H file does not fit ViT-L: not used
    assert script.RUNTIME.towers.loaded() == [source_key(vit_l)]
    assert any("found on disk" in r.message and str(vit_l) in r.message for r in caplog.records)


def test_files_in_extension_and_extra_folders_are_found(loads, tiny_towers, tmp_path):
    host = script.RUNTIME.host
    cn = Path(paths.extensions_dir) / "sd-webui-controlnet" / "annotator" / "downloads"
    vit_h = put_file(tiny_towers, "vit_h", cn / "clip_vision" / "clip_h.safetensors")
    comfy = tmp_path / "ComfyUI" / "models" / "clip_vision"
    shutil.copytree(tiny_towers["vit_bigg"], comfy / "bigg-folder")  # a save_pretrained folder
    shared.opts.data[settings.TOWER_FOLDERS] = str(comfy)
    assert settings.source_to_load(host, VIT_H) == str(vit_h)
    assert settings.source_to_load(host, VIT_BIGG) == str(comfy / "bigg-folder")
    assert settings.source_to_load(host, VIT_L) == VIT_L.default_source  # none found


def test_the_controlnet_extensions_pickled_towers_are_listed_not_used(loads, tiny_towers, caplog):
    """ControlNet keeps its towers as pickles (clip_h.pth): a default setting does not use
    them, the console says how to convert one, and a setting that names one loads it (this
    torch has no published weights_only bypass)."""
    import torch
    from safetensors.torch import load_file

    state = load_file(tiny_towers["vit_h"] / "model.safetensors")
    clip_h = models() / "clip_vision" / "clip_h.pth"
    clip_h.parent.mkdir(parents=True)
    torch.save(state, clip_h)
    host = script.RUNTIME.host
    with caplog.at_level(logging.WARNING):
        assert settings.source_to_load(host, VIT_H) == VIT_H.default_source
        assert settings.source_to_load(host, VIT_H) == VIT_H.default_source
    notes = [r.message for r in caplog.records if "not opening the pickles" in r.message]
    assert notes == [
        f"FlexDiffuse: not opening the pickles found where CLIP vision models are kept "
        f"({clip_h}): loading a pickle can run code hidden in it. To use one, convert it to "
        f".safetensors beside it once, if you trust the file: {convert_command(clip_h)}"
    ]  # once, however often the folders are looked at
    shared.opts.data[VIT_H.setting] = str(clip_h)
    use_checkpoint("sd2")
    job = loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert len(job.cond_steps()) == 1
    assert loads.calls == [str(clip_h)]


def test_a_named_pickle_on_a_torch_with_a_published_bypass_stops_the_job_unopened(
    webui, tmp_path, monkeypatch
):
    """As A1111 1.10 (torch 2.1.2) does with a setting, or an API request's override, that
    names a pickle: the job stops with the command that converts it."""
    import torch

    marker = tmp_path / "code-ran"
    evil = plant(models() / "clip_vision" / "clip_l.pth", marker)
    shared.opts.data[VIT_L.setting] = str(evil)
    monkeypatch.setattr(torch, "__version__", "2.1.2")
    reads = bypass_weights_only(monkeypatch)
    with opened_files() as opened, pytest.raises(FlexDiffuseError) as caught:
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert not marker.exists()
    assert reads == []
    assert pickles_in(opened) == []
    assert f"'{evil}' is a pickle" in str(caught.value)
    assert convert_command(evil) in str(caught.value)


def test_a_setting_that_names_a_tower_is_kept_even_when_files_are_found(loads, tiny_towers):
    put_file(tiny_towers, "vit_l", models() / "clip_vision" / "vit-l.safetensors")
    shared.opts.data[VIT_L.setting] = str(tiny_towers["vit_l"])
    loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert loads.calls == [str(tiny_towers["vit_l"])]


def test_settings_saved_with_the_old_whole_model_ids(loads, tiny_towers):
    """A1111 saves defaults into its config: the old ids keep working, and cost no more."""
    host = script.RUNTIME.host
    old = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert old in VIT_H.earlier_sources
    shared.opts.data[VIT_H.setting] = old
    # Not downloaded yet: the smaller vision-only default is downloaded instead.
    assert settings.source_to_load(host, VIT_H) == "h94/IP-Adapter/models/image_encoder"
    # Downloaded before: that download is used.
    cache = settings.download_dir(host)
    save_file = hub_snapshot(cache, old)
    shutil.copytree(tiny_towers["vit_h"], save_file, dirs_exist_ok=True)
    assert settings.source_to_load(host, VIT_H) == old
    # A file on disk beats both.
    vit_h = put_file(tiny_towers, "vit_h", models() / "ClipVision" / "h.safetensors")
    assert settings.source_to_load(host, VIT_H) == str(vit_h)


def test_the_new_defaults_are_the_small_vision_only_sources():
    assert VIT_L.default_source == "openai/clip-vit-large-patch14"
    assert VIT_H.default_source == "h94/IP-Adapter/models/image_encoder"
    assert VIT_BIGG.default_source == "h94/IP-Adapter/sdxl_models/image_encoder"
    assert (VIT_L.size, VIT_H.size, VIT_BIGG.size) == ("1.71 GB", "2.53 GB", "3.69 GB")
    assert is_default_source("laion/CLIP-ViT-bigG-14-laion2B-39B-b160k", VIT_BIGG)
    assert not is_default_source(VIT_H.default_source, VIT_BIGG)


# ----------------------------------------------------------------- the settings page


def test_tower_settings_are_dropdowns_of_fitting_files_that_take_any_text(webui, tiny_towers):
    put_file(tiny_towers, "vit_l", models() / "clip_vision" / "vit-l.safetensors")
    put_file(tiny_towers, "vit_h", models() / "clip_vision" / "vit-h.safetensors")
    (models() / "clip_vision" / "vit-l.pth").write_bytes(b"not a torch file: not offered")
    info = shared.opts.data_labels[VIT_L.setting]
    assert callable(info.component)
    assert callable(info.component_args)
    assert callable(info.refresh)
    args = info.component_args()
    assert args == {
        "choices": [VIT_L.default_source, str(models() / "clip_vision" / "vit-l.safetensors")]
    }
    gr.Dropdown.update(**args)  # the refresh button's update takes the args as they are
    # A file put there later shows after a refresh (A1111 calls refresh, then the args).
    later = put_file(tiny_towers, "vit_l", models() / "clip_vision" / "later.safetensors")
    info.refresh()
    assert str(later) in info.component_args()["choices"]
    # The component A1111 builds from it keeps a value that is not among the choices.
    with gr.Blocks():
        dropdown = info.component(label=info.label, value="my/own-id", **info.component_args())
    assert dropdown.allow_custom_value
    # A plain Dropdown: gradio 4 (Forge) sends a subclass's props by its own __init__'s
    # parameters, and a page with a dropdown without choices does not load.
    assert type(dropdown) is gr.Dropdown
    assert dropdown.preprocess("my/own-id") == "my/own-id"
    folders = shared.opts.data_labels[settings.TOWER_FOLDERS]
    assert folders.default == ""
    assert folders.component is None  # a plain textbox


# ----------------------------------------------------------------- progress and stops


class RecordingState(shared.State):
    """The webui's job state, remembering every progress text it was given."""

    def __init__(self) -> None:
        self.texts: list[str | None] = []

    @property
    def textinfo(self) -> str | None:
        return self.texts[-1] if self.texts else None

    @textinfo.setter
    def textinfo(self, value: str | None) -> None:
        self.texts.append(value)


def test_the_progress_text_says_what_flexdiffuse_does(webui, monkeypatch):
    state = RecordingState()
    monkeypatch.setattr(shared, "state", state)
    use_checkpoint("sdxl")
    negative = gradient(seed=4)
    webui.txt2img(webui.args(image=IMAGE, negative_image=negative), prompt="a cat", steps=1)
    said = [text for text in state.texts if text]
    assert said == [
        "FlexDiffuse: loading CLIP ViT-L/14",
        "FlexDiffuse: encoding 2 guidance images with CLIP ViT-L/14",
        "FlexDiffuse: loading OpenCLIP ViT-bigG/14",
        "FlexDiffuse: encoding 2 guidance images with OpenCLIP ViT-bigG/14",
    ]
    assert state.textinfo is None  # cleared for the sampling that follows
    state.texts.clear()
    webui.txt2img(webui.args(image=IMAGE), prompt="a dog", steps=1)
    assert [text for text in state.texts if text] == []  # nothing new to load or encode


@pytest.mark.parametrize("stop", ["interrupt", "skip"])
def test_interrupt_or_skip_stops_a_load(install_webui, stop):
    def loader(source, *args, **kwargs):
        getattr(shared.state, stop)()  # the user presses the button while the tower loads
        return ImageEncoder.from_pretrained(source, *args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    with pytest.raises(FlexDiffuseError, match="Stopped before the CLIP vision model"):
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == []  # nothing half-loaded is kept
    assert shared.state.textinfo is None


def test_an_interrupted_job_does_not_stop_later_loads(install_webui):
    """A1111 leaves the interrupt flag set after the job: the preview and the next job load."""
    pressed = []

    def loader(source, *args, **kwargs):
        if not pressed:
            pressed.append(1)
            shared.state.interrupt()
        return ImageEncoder.from_pretrained(source, *args, **kwargs)

    webui = install_webui(VisionTowers(loader))
    with pytest.raises(FlexDiffuseError, match="Stopped before"):
        webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert shared.state.interrupted  # still set, as in A1111, but the job is over
    assert not script.RUNTIME.host.stop_requested()
    job = webui.txt2img(webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert len(job.cond_steps()) == 1


# ----------------------------------------------------------------- memory


def test_every_spelling_of_one_tower_loads_one_copy(loads, tiny_towers, tmp_path, monkeypatch):
    folder = tiny_towers["vit_l"]
    link = tmp_path / "linked-tower"
    link.symlink_to(folder, target_is_directory=True)
    monkeypatch.chdir(folder.parent)
    spellings = [str(folder), f"./{folder.name}", f"{folder.name}/", str(link), f" {folder} "]
    for i, spelling in enumerate(spellings):
        shared.opts.data[VIT_L.setting] = spelling
        loads.webui.txt2img(loads.webui.args(image=gradient(seed=20 + i)), prompt="a cat", steps=1)
    assert len(loads.calls) == 1
    assert script.RUNTIME.towers.loaded() == [source_key(folder)]


def test_a_tower_no_setting_names_is_let_go(loads, tiny_towers, tmp_path):
    first = tiny_towers["vit_l"]
    second = shutil.copytree(first, tmp_path / "another-vit-l")
    shared.opts.data[VIT_L.setting] = str(first)
    loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == [source_key(first)]
    gc_before = devices.gc_calls
    shared.opts.set(VIT_L.setting, str(second))  # as Apply settings does
    assert script.RUNTIME.towers.loaded() == []  # let go now, not at the next job
    assert devices.gc_calls > gc_before
    loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == [source_key(second)]
    # Towers other settings name stay: an SDXL job loads bigG, an SD 1.x job keeps it.
    shared.opts.data[VIT_BIGG.setting] = str(tiny_towers["vit_bigg"])
    use_checkpoint("sdxl")
    loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    use_checkpoint("sd1")
    loads.webui.txt2img(loads.webui.args(image=gradient(seed=8)), prompt="a cat", steps=1)
    assert sorted(script.RUNTIME.towers.loaded()) == sorted(
        [source_key(second), source_key(tiny_towers["vit_bigg"])]
    )


def test_a_found_file_is_let_go_when_its_folder_leaves_the_settings(loads, tiny_towers, tmp_path):
    extra = tmp_path / "comfy" / "clip_vision"
    shutil.copytree(tiny_towers["vit_l"], extra / "vit-l")
    shared.opts.set(settings.TOWER_FOLDERS, str(extra))
    loads.webui.txt2img(loads.webui.args(image=IMAGE), prompt="a cat", steps=1)
    assert script.RUNTIME.towers.loaded() == [source_key(extra / "vit-l")]
    shared.opts.set(settings.TOWER_FOLDERS, "")
    assert script.RUNTIME.towers.loaded() == []
