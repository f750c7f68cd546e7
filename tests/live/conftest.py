"""A client for a running A1111 webui; every live test is skipped without ``--webui-url``."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.conftest import TESTDATA


@dataclass
class Response:
    status: int
    body: Any


class WebuiClient:
    """Just enough of A1111's HTTP API, on the standard library."""

    def __init__(self, url: str, settings: dict[str, str]) -> None:
        self.url = url.rstrip("/")
        self.settings = settings  # override_settings sent with every job

    def get(self, path: str) -> Response:
        return self._send(urllib.request.Request(self.url + path))

    def post(self, path: str, payload: dict[str, Any]) -> Response:
        data = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        return self._send(urllib.request.Request(self.url + path, data, headers))

    def job(self, kind: str = "txt2img", guidance: Any = None, **fields: Any) -> Response:
        """A small fixed-seed job, FlexDiffuse given ``guidance`` (script args) or left off."""
        payload = {
            "prompt": "a photo of a deer in a dark forest",
            "steps": 2,
            "width": 64,
            "height": 64,
            "seed": 7,
            "sampler_name": "Euler",
            **fields,
        }
        payload["override_settings"] = {**self.settings, **fields.get("override_settings", {})}
        if guidance is not None:
            payload["alwayson_scripts"] = {"flexdiffuse": {"args": guidance}}
        return self.post(f"/sdapi/v1/{kind}", payload)

    def _send(self, request: urllib.request.Request) -> Response:
        try:
            with urllib.request.urlopen(request, timeout=900) as reply:
                return Response(reply.status, json.loads(reply.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, json.loads(error.read() or b"null"))


def image_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def pixels(encoded: str) -> np.ndarray:
    """The pixels of an image the API returned (its PNG text chunks differ per job)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


@pytest.fixture(scope="session")
def webui(request) -> WebuiClient:
    url = request.config.getoption("--webui-url")
    if not url:
        pytest.skip("live webui tests need --webui-url")
    settings = {}
    for key in ("vit_l", "vit_h", "vit_bigg"):
        value = request.config.getoption(f"--webui-{key.replace('_', '-')}")
        if value:
            settings[f"flexdiffuse_model_{key}"] = value
    client = WebuiClient(url, settings)
    try:
        client.get("/sdapi/v1/sd-models")
    except OSError as error:
        pytest.fail(f"no A1111 API at {url}: {error}")
    return client


@pytest.fixture(scope="session")
def guidance_image() -> str:
    """A real guidance image from ../shared/testdata, base64-encoded."""
    path = TESTDATA / "deer_mod.webp"
    if not path.is_file():
        pytest.skip(f"real test images not found at {TESTDATA}")
    with Image.open(path) as image:
        return image_base64(image)
