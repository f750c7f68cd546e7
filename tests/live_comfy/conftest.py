"""A client for a running ComfyUI; every live test is skipped without ``--comfyui-url``.

``bash tests/ci.sh`` builds and starts a real ComfyUI (``../shared/hosts/live-comfyui``) with
this checkout in its ``custom_nodes/`` and runs these tests against it.
"""

from __future__ import annotations

import urllib.error
from pathlib import Path
from typing import Any

import pytest

from tests.live_comfy.client import ComfyClient


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
