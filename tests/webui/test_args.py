"""Reading the script's arguments: the panel's values and the API's, images included."""

from __future__ import annotations

import base64
import contextlib
import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from flexdiffuse.params import PARAM_SPECS, GuidanceParams
from flexdiffuse.webui.args import ARG_NAMES, parse_script_args, read_image
from flexdiffuse.webui.errors import FlexDiffuseError
from tests.webui.conftest import gradient

IMAGE = gradient(20, 10)


def encoded(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


def test_positional_arguments_in_panel_order():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, "Text order", False, "dog", 0.6]
    request = parse_script_args([True, IMAGE, *values])
    assert request.enabled
    assert request.image is IMAGE
    assert request.params == GuidanceParams(
        threshold_mult=0.1,
        threshold_floor=0.2,
        clustered=0.3,
        linear=0.4,
        max_guidance=0.5,
        order="text",
        reuse=False,
        concepts="dog",
        concept_threshold=0.6,
    )
    assert ARG_NAMES[2:] == tuple(spec.name for spec in PARAM_SPECS)


def test_named_arguments_default_the_rest_and_imply_enabled():
    request = parse_script_args([{"image": encoded(IMAGE), "linear": 0.2, "reuse": "false"}])
    assert request.enabled
    assert request.params == GuidanceParams(linear=0.2, reuse=False)
    assert request.image.size == (20, 10)
    assert not parse_script_args([{"enabled": False, "linear": 99}]).enabled


def test_missing_trailing_arguments_take_defaults():
    assert parse_script_args([True, IMAGE]).params == GuidanceParams()


@pytest.mark.parametrize(
    "value",
    [
        encoded(IMAGE),
        "data:image/png;base64," + encoded(IMAGE),
        "data:image/webp;base64," + encoded(IMAGE, "WEBP"),
        "\n".join(encoded(IMAGE)[i : i + 60] for i in range(0, len(encoded(IMAGE)), 60)),
        np.asarray(IMAGE),
        {"image": IMAGE, "mask": None},
    ],
    ids=["base64", "data-url", "webp", "wrapped-lines", "array", "gradio-dict"],
)
def test_images_in_every_form_clients_send(value):
    image = read_image(value)
    assert image.size == (20, 10)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_image(value):
    assert read_image(value) is None


def test_array_that_is_not_an_image():
    with pytest.raises(FlexDiffuseError, match="is not an image"):
        read_image(np.zeros((2, 2, 7), dtype=np.uint8))


def test_enable_switch_must_be_boolean():
    with pytest.raises(FlexDiffuseError, match="enable switch must be true or false"):
        parse_script_args(["yes please"])


@given(st.binary(max_size=64))
def test_random_bytes_never_escape_as_a_raw_error(data):
    with contextlib.suppress(FlexDiffuseError):
        read_image(base64.b64encode(data).decode())
