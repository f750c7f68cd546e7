"""The FlexDiffuse extension loaded into the fake A1111 host (``tests/fakehost``).

The ``webui`` fixture does what A1111 does at startup, against the fakes: it runs
``scripts/flexdiffuse.py`` the way ``modules.script_loading`` does, runs the settings
callbacks, builds both tabs' panels in a gradio Blocks and puts the scripts in a runner. Its
helpers then run txt2img / img2img jobs through the fake ``process_images``.

The host is the ``host_fake`` fixture's: the fake A1111, or it with a fake Forge's overlay
installed first (``tests/fakehost_forge2``, ``tests/fakehost_oldforge``). A test module
marked ``every_host`` runs each of its webui tests once per fake host (guidance at every
step, batches, AND, prompt editing, hires fix, the negative image, errors, the preview, the
model families must behave on every host alike); a test about A1111's own behaviour in such
a module is marked ``a1111_only``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

FAKEHOST = Path(__file__).resolve().parents[1] / "fakehost"
sys.path.insert(0, str(FAKEHOST))

import gradio as gr  # noqa: E402
from modules import (  # noqa: E402
    errors,
    paths,
    processing,
    script_callbacks,
    scripts,
    sd_hijack,
    shared,
)
from sdmodel import FakeSdModel  # noqa: E402

from flexdiffuse.params import PARAM_SPECS, format_value  # noqa: E402
from flexdiffuse.webui import hosts, script  # noqa: E402
from flexdiffuse.webui.args import (  # noqa: E402
    ARG_NAMES,
    IMAGE_INPUTS,
    MASK_INPUTS,
    NO_REFERENCE,
    REFERENCE_INPUTS,
)
from flexdiffuse.webui.families import VIT_BIGG, VIT_H, VIT_L  # noqa: E402
from flexdiffuse.webui.runtime import Runtime  # noqa: E402
from flexdiffuse.webui.vision_towers import VisionTowers  # noqa: E402
from tests.conftest import save_tiny_clip  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"

OVERLAYS = {
    "forge2": TESTS / "fakehost_forge2" / "forge2_overlay.py",
    "oldforge": TESTS / "fakehost_oldforge" / "oldforge_overlay.py",
}
"""The fake Forges, each an overlay over the fake A1111."""

HOST_FAKES = ("a1111", *sorted(OVERLAYS))

ADDED = ("backend", "modules_forge", "ldm_patched", "modules.sd_models")
"""Modules the overlays add, removed after each test so that the next detects its own host."""


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    definition = metafunc.definition
    if (
        "host_fake" in metafunc.fixturenames
        and definition.get_closest_marker("every_host")
        and not definition.get_closest_marker("a1111_only")
    ):
        metafunc.parametrize("host_fake", HOST_FAKES, indirect=True)


def load_overlay(host: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"tests.overlay_{host}", OVERLAYS[host])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forget_added_modules() -> None:
    for name in list(sys.modules):
        if any(name == added or name.startswith(f"{added}.") for added in ADDED):
            del sys.modules[name]


@contextlib.contextmanager
def host_overlay(host: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fake A1111 turned into fake ``host`` (no change for ``a1111``) while in use."""
    if host == "a1111":
        yield host
        return
    forget_added_modules()
    load_overlay(host).install(monkeypatch)
    try:
        yield host
    finally:
        forget_added_modules()


@pytest.fixture
def host_fake(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fake host of this test: A1111 unless parametrized (see ``every_host``)."""
    with host_overlay(getattr(request, "param", "a1111"), monkeypatch) as host:
        yield host


def gradient(width: int = 48, height: int = 40, seed: int = 0) -> Image.Image:
    """A reproducible RGB test picture."""
    generator = torch.Generator().manual_seed(seed)
    pixels = (torch.rand(height, width, 3, generator=generator) * 255).to(torch.uint8)
    return Image.fromarray(pixels.numpy(), "RGB")


@pytest.fixture(scope="session")
def tiny_towers(tmp_path_factory) -> dict[str, Path]:
    """Tiny random CLIP vision towers with the real towers' token widths, saved to disk."""
    root = tmp_path_factory.mktemp("towers")
    return {
        tower.name: save_tiny_clip(root / tower.name, projection_dim=tower.token_width, seed=i)
        for i, tower in enumerate((VIT_L, VIT_H, VIT_BIGG))
    }


def load_extension_script() -> Any:
    """Run ``scripts/flexdiffuse.py`` like ``modules.script_loading.load_module``."""
    path = ROOT / "scripts" / "flexdiffuse.py"
    spec = importlib.util.spec_from_file_location(path.name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Job:
    p: Any
    processed: Any

    def cond_steps(self, hr: bool = False) -> list[torch.Tensor]:
        """The prompt batch the UNet got at each step of a pass."""
        return [call.text_cond for call in self.p.unet_calls if call.is_hr_pass == hr]


class Webui:
    """The extension inside the fake webui, with helpers to run jobs."""

    def __init__(self, script_module: Any, towers: dict[str, Path]) -> None:
        self.script_class = script_module.FlexDiffuseScript
        self.towers = towers
        self.runners = {False: scripts.ScriptRunner(), True: scripts.ScriptRunner()}
        self.scripts: dict[bool, Any] = {}
        self.controls: dict[bool, list[Any]] = {}
        self.prompts: dict[bool, Any] = {}
        with gr.Blocks() as self.blocks:
            for is_img2img, runner in self.runners.items():
                script = self.script_class()
                script.filename = str(ROOT / "scripts" / "flexdiffuse.py")
                script.is_img2img = is_img2img
                script.is_txt2img = not is_img2img
                runner.register(script)
                tab = "img2img" if is_img2img else "txt2img"
                self.prompts[is_img2img] = gr.Textbox(elem_id=f"{tab}_prompt")
                runner.after_component(self.prompts[is_img2img])  # the top row comes first
                controls = script.ui(is_img2img)
                runner.add(script, is_img2img, controls)
                self.scripts[is_img2img] = script
                self.controls[is_img2img] = controls

    @staticmethod
    def args(enabled: bool = True, image: Any = None, **values: Any) -> list[Any]:
        """Script arguments as the panel sends them, in order; defaults for what is not given.

        ``values`` are parameters, the other image inputs (``image_2=...``), masks
        (``image_mask=...``) and the slots' saved references (``image_reference=...``).
        """
        args = {"enabled": enabled, "image": image}
        for spec in PARAM_SPECS:
            value = values.pop(spec.name, spec.default)
            args[spec.name] = format_value(spec, value) if spec.kind == "choice" else value
        for slot in (*IMAGE_INPUTS[1:], *MASK_INPUTS.values()):
            args[slot] = values.pop(slot, None)
        for name in REFERENCE_INPUTS.values():
            args[name] = values.pop(name, NO_REFERENCE)
        assert not values, f"unknown arguments {values}"
        return [args[name] for name in ARG_NAMES]

    def txt2img(self, args: list[Any] | None = None, **kwargs: Any) -> Job:
        return self._run(processing.StableDiffusionProcessingTxt2Img, False, args, kwargs)

    def img2img(self, args: list[Any] | None = None, **kwargs: Any) -> Job:
        kwargs.setdefault("init_images", [gradient(64, 64, seed=9)])
        return self._run(processing.StableDiffusionProcessingImg2Img, True, args, kwargs)

    def _run(self, cls: Any, is_img2img: bool, args: Any, kwargs: dict[str, Any]) -> Job:
        script = self.scripts[is_img2img]
        script_args = [None] * script.args_from + list(args if args is not None else [False])
        p = cls(scripts=self.runners[is_img2img], script_args=script_args, **kwargs)
        return Job(p, processing.process_images(p))


def reset_host(family: str = "sd1") -> None:
    """A freshly started fake webui with one checkpoint of ``family`` loaded."""
    shared.opts = shared.Options()
    shared.state = shared.State()
    shared.sd_model = FakeSdModel(family)
    sd_hijack.model_hijack.clip = shared.sd_model.text_wrapper
    script_callbacks.clear_callbacks()
    errors.reported.clear()
    for cls in (processing.StableDiffusionProcessing, processing.StableDiffusionProcessingTxt2Img):
        for name in ("cached_c", "cached_uc", "cached_hr_c", "cached_hr_uc"):
            if name in vars(cls):
                setattr(cls, name, [None, None])


def move_webui(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Give the fake webui its folders in ``root`` (models, extensions), for this test."""
    monkeypatch.setattr(paths, "data_path", str(root))
    monkeypatch.setattr(paths, "script_path", str(root))
    monkeypatch.setattr(paths, "models_path", str(root / "models"))
    monkeypatch.setattr(paths, "extensions_dir", str(root / "extensions"))
    monkeypatch.setattr(paths, "extensions_builtin_dir", str(root / "extensions-builtin"))
    return root


@pytest.fixture
def install_webui(host_fake, tiny_towers, monkeypatch, tmp_path) -> Callable[..., Webui]:
    """Installs FlexDiffuse in a fresh fake webui (``host_fake``'s) with an SD 1.x checkpoint
    loaded.

    ``towers`` replaces the process's vision towers (a loader of one's own, say). The webui's
    folders are this test's own (``tmp_path / "webui"``).
    """

    def install(towers: VisionTowers | None = None) -> Webui:
        move_webui(tmp_path / "webui", monkeypatch)
        reset_host()
        monkeypatch.setattr(script, "RUNTIME", Runtime(hosts.detect(), towers or VisionTowers()))
        module = load_extension_script()
        script_callbacks.ui_settings_callback()
        for tower in (VIT_L, VIT_H, VIT_BIGG):
            shared.opts.data[tower.setting] = str(tiny_towers[tower.name])
        return Webui(module, tiny_towers)

    return install


@pytest.fixture
def webui(install_webui) -> Webui:
    """FlexDiffuse installed in a fresh fake webui with an SD 1.x checkpoint loaded."""
    return install_webui()


def use_checkpoint(family: str) -> None:
    """Load a checkpoint of another family into the fake webui."""
    shared.sd_model = FakeSdModel(family)
    sd_hijack.model_hijack.clip = shared.sd_model.text_wrapper
