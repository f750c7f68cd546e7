"""A client for a running A1111 webui; every live test is skipped without ``--webui-url``.

``bash tests/ci.sh`` builds and starts a real A1111 (``../shared/hosts/live-a1111``) and runs
these tests against it; under ``CI=true`` a missing prerequisite fails instead of skipping.
"""

from __future__ import annotations

import base64
import io
import json
import os
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
        self._txt2img_fields: set[str] | None = None

    def hires_fields(self, cfg_scale: float = 7.0) -> dict[str, Any]:
        """What a hires job needs beyond A1111's fields on this host, read from its API.

        Forge's hires pass reads ``hr_additional_modules`` unguarded (HTTP 500 without it)
        and runs at ``hr_cfg``, which the API defaults to 1 (no negative prompt).
        """
        if self._txt2img_fields is None:
            schemas = self.get("/openapi.json").body["components"]["schemas"]
            schema = schemas.get("StableDiffusionProcessingTxt2Img", {})
            self._txt2img_fields = set(schema.get("properties", {}))
        fields: dict[str, Any] = {}
        if "hr_additional_modules" in self._txt2img_fields:
            fields["hr_additional_modules"] = ["Use same choices"]
        if "hr_cfg" in self._txt2img_fields:
            fields["hr_cfg"] = cfg_scale
        return fields

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
        if guidance is not None:  # beside any other script's given in fields
            scripts = {**fields.get("alwayson_scripts", {}), "flexdiffuse": {"args": guidance}}
            payload["alwayson_scripts"] = scripts
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


def error_message(body: dict[str, Any]) -> str:
    """The message of an API error body: A1111 calls it ``errors``, Forge ``message``."""
    return str(body.get("errors", body.get("message", "")))


def pixels(encoded: str) -> np.ndarray:
    """The pixels of an image the API returned (its PNG text chunks differ per job)."""
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB"))


def ok(response: Response) -> Any:
    """The body of a successful reply; its error otherwise."""
    assert response.status == 200, response.body
    return response.body


def info(body: Any) -> dict:
    """A job's ``info``, parsed."""
    return json.loads(body["info"])


def first_pixels(body: Any) -> np.ndarray:
    """The pixels of a job's first image."""
    return pixels(body["images"][0])


def same_pixels(a: Any, b: Any) -> bool:
    """Whether two jobs' first images have identical pixels."""
    return np.array_equal(first_pixels(a), first_pixels(b))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def skip_or_fail(reason: str) -> None:
    """Skip, or fail under ``CI=true``, where the live suite must run in full."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: the live suite must run in full)", pytrace=False)
    pytest.skip(reason)


XYZ_CHOSEN = {"Draw legend": True, "Include Sub Images": True}
"""X/Y/Z controls the live tests set (by label); every other control keeps the default the
host reports: hosts add controls of their own (Neo's "Row Count", reForge's "Skip final grid
generation"...), so the argument list is never assumed."""


def xyz_script_args(
    webui: WebuiClient, axis: str, values: str, choices: list[str] | None = None
) -> list[Any]:
    """``script_args`` of the host's X/Y/Z plot: X axis ``axis`` over ``values`` (an axis
    with a menu of ``choices``: those, which the plot takes from the dropdown), no Y or Z
    axis, a legend and the lone images.

    Built from ``/sdapi/v1/script-info``, which lists the script's controls in the order its
    ``run`` takes them, each with its label and default: an axis type is the index of its
    label (the dropdowns have ``type="index"``), the first control labelled "X values" is the
    text box, the second the hidden dropdown of choices.
    """
    scripts = ok(webui.get("/sdapi/v1/script-info"))
    xyz = next(s for s in scripts if s["name"] == "x/y/z plot" and not s["is_img2img"])
    labels = [arg["label"] for arg in xyz["args"]]
    for needed in ("X type", "X values", "Y type", "Z type", *XYZ_CHOSEN):
        assert needed in labels, f"this host's X/Y/Z plot has no {needed!r} control: {labels}"
    axis_types = next(arg["choices"] for arg in xyz["args"] if arg["label"] == "X type")
    chosen = {"X type": axis_types.index(axis), "X values": values, **XYZ_CHOSEN}
    for name in "YZ":
        chosen[f"{name} type"] = axis_types.index("Nothing")
        chosen[f"{name} values"] = ""
    args: list[Any] = []
    seen: set[str] = set()
    for arg in xyz["args"]:
        label = arg["label"]
        if label.endswith(" values") and label in seen:  # the dropdown twin of the text box
            args.append(list(choices or []) if label == "X values" else [])
        elif label in chosen:
            args.append(chosen[label])
        else:
            args.append(arg["value"])
        seen.add(label)
    return args


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


def real_image_base64(name: str) -> str:
    """The real test image ``name`` of ../shared/testdata, base64-encoded."""
    path = TESTDATA / name
    if not path.is_file():
        skip_or_fail(f"real test images not found at {TESTDATA}")
    with Image.open(path) as image:
        return image_base64(image)


@pytest.fixture(scope="session")
def second_image() -> str:
    """A second real guidance image, base64-encoded."""
    return real_image_base64("turtle_mod.webp")


@pytest.fixture(scope="session")
def guidance_image() -> str:
    """A real guidance image from ../shared/testdata, base64-encoded."""
    return real_image_base64("deer_mod.webp")
