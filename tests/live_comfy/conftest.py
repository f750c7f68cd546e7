"""A client for a running ComfyUI; every live test is skipped without ``--comfyui-url``.

``bash tests/ci.sh`` builds and starts a real ComfyUI (``../shared/hosts/live-comfyui``) with
this checkout in its ``custom_nodes/`` and runs these tests against it. It also gives the server
the a1111 host folder's SDXL and ViT-bigG (``--comfyui-sdxl-checkpoint``, ``--comfyui-vit-bigg``)
with ``comfy_nodes/kit_models``, which teaches ComfyUI those shallow test models, and a random
ViT-H/14 (``--comfyui-vit-h``, ``random_towers.py``); the tests that need one are skipped
without its option.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.live_comfy.client import ComfyClient
from tests.live_comfy.jobs import example, pick
from tests.live_comfy.make_examples import SD15, SDXL, STYLE_IMAGE, VIT_BIGG, VIT_L, style_picture

KIT_MODELS_HINT = (
    "tests/ci.sh starts the server with `-- --extra-model-paths-config "
    "tests/live_comfy/extra_model_paths.yaml`, which loads tests/live_comfy/comfy_nodes/kit_models"
)


@pytest.fixture(scope="session")
def comfy(request) -> ComfyClient:
    url = request.config.getoption("--comfyui-url")
    if not url:
        pytest.skip("live ComfyUI tests need --comfyui-url")
    client = ComfyClient(url)
    try:
        client.get_json("/system_stats")
    except (urllib.error.URLError, OSError) as error:
        pytest.fail(f"no ComfyUI at {url}: {error}")
    return client


@pytest.fixture(scope="session")
def host_dir(request) -> Path:
    folder = request.config.getoption("--comfyui-dir")
    if not folder:
        pytest.skip("needs --comfyui-dir (the live-comfyui host folder)")
    return Path(folder)


@pytest.fixture(scope="session")
def object_info(comfy) -> dict[str, Any]:
    return comfy.get_json("/object_info")


@pytest.fixture(scope="session")
def models(object_info) -> dict[str, list[str]]:
    """The server's checkpoint and CLIP vision model files."""

    def options(node: str, name: str) -> list[str]:
        spec = object_info[node]["input"]["required"][name]
        return spec[0] if isinstance(spec[0], list) else spec[1].get("options", [])

    return {
        "checkpoints": options("CheckpointLoaderSimple", "ckpt_name"),
        "clip_vision": options("CLIPVisionLoader", "clip_name"),
    }


def _named(request, models: dict[str, list[str]], option: str, kind: str) -> str | None:
    """The model file an option names, which the server must list (None: no option)."""
    name = request.config.getoption(option, None)
    if name and name not in models[kind]:
        pytest.fail(f"{option} {name}: the server's {kind} are {models[kind]}")
    return name


@pytest.fixture(scope="session")
def names(request, models) -> dict[str, str]:
    """The example workflows' model file names -> the server's."""
    found = {
        SD15: pick(models["checkpoints"], "sd15") or pick(models["checkpoints"], "1-5"),
        VIT_L: pick(models["clip_vision"], "vit-l"),
        SDXL: _named(request, models, "--comfyui-sdxl-checkpoint", "checkpoints")
        or pick(models["checkpoints"], "sdxl"),
        VIT_BIGG: _named(request, models, "--comfyui-vit-bigg", "clip_vision")
        or pick(models["clip_vision"], "bigg"),
    }
    if not found[SD15] or not found[VIT_L]:
        pytest.fail(f"the server has no SD 1.5 checkpoint or ViT-L CLIP vision model: {models}")
    return {k: v for k, v in found.items() if v}


@pytest.fixture(scope="session")
def style_image(comfy) -> str:
    """The style picture of the recipe and region examples, uploaded to the server."""
    return comfy.upload_image(STYLE_IMAGE, style_picture())


@pytest.fixture(scope="session")
def basic(object_info, names) -> dict[str, Any]:
    return example("flexdiffuse-sd15-basic", object_info, names)


@pytest.fixture(scope="session")
def kit_models(request, names) -> None:
    """The host kit's SDXL and ViT-bigG are on the server, and the shim that loads them."""
    if not {SDXL, VIT_BIGG} <= set(names):
        pytest.skip(
            "the live host has no SDXL checkpoint and ViT-bigG vision model "
            "(--comfyui-sdxl-checkpoint, --comfyui-vit-bigg)"
        )
    folder = request.config.getoption("--comfyui-dir")
    if folder:
        log = (Path(folder) / "server.log").read_text(encoding="utf-8", errors="replace")
        if "[kit_models]" not in log:
            pytest.fail(f"ComfyUI cannot load the kit's SDXL and ViT-bigG: {KIT_MODELS_HINT}")


@pytest.fixture(scope="session")
def sdxl(object_info, names, kit_models) -> dict[str, Any]:
    """The SDXL example (ViT-L/14 and ViT-bigG/14, pooled guidance 0.3), made small."""
    return example("flexdiffuse-sdxl-both-towers", object_info, names)


@pytest.fixture(scope="session")
def vit_h(request, models) -> str:
    """The server's random ViT-H/14 CLIP vision file (tests/live_comfy/random_towers.py)."""
    name = _named(request, models, "--comfyui-vit-h", "clip_vision")
    if not name:
        pytest.skip("no ViT-H/14 CLIP vision model on the server (--comfyui-vit-h)")
    return name
