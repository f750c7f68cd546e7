"""Reading the script's arguments: the panel's values and the API's, images included."""

from __future__ import annotations

import base64
import contextlib
import io

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from PIL import Image

from flexdiffuse.images import image_digest
from flexdiffuse.params import PARAM_SPECS, JobParams
from flexdiffuse.webui.args import ARG_NAMES, parse_script_args, read_image
from flexdiffuse.webui.errors import FlexDiffuseError
from tests.webui.conftest import gradient

IMAGE = gradient(20, 10)


def encoded(image: Image.Image, fmt: str = "PNG") -> str:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


POSITIONAL_API = (  # frozen: API clients send these positions; new inputs go last
    "enabled",
    "image",
    "threshold_mult",
    "threshold_floor",
    "clustered",
    "linear",
    "max_guidance",
    "order",
    "reuse",
    "concepts",
    "concept_threshold",
    "start",
    "end",
    "pooled",
    "image_weight",
    "image_2_weight",
    "image_3_weight",
    "image_4_weight",
    "negative_weight",
    "image_2",
    "image_3",
    "image_4",
    "negative_image",
    "strength",
    "auto_floor",
)


def test_the_positional_api_only_grows_at_its_end():
    assert ARG_NAMES[: len(POSITIONAL_API)] == POSITIONAL_API


def test_every_parameter_is_one_positional_argument():
    """A parameter left out of LATER_ARG_NAMES would have no place in the positional API."""
    assert len(set(ARG_NAMES)) == len(ARG_NAMES)
    assert {spec.name for spec in PARAM_SPECS} <= set(ARG_NAMES)


def test_positional_arguments_in_panel_order():
    values = [0.1, 0.2, 0.3, 0.4, 0.5, "Text order", False, "dog", 0.6]
    request = parse_script_args([True, IMAGE, *values])
    assert request.enabled
    assert list(request.images) == ["image"]
    assert request.images["image"].digest == image_digest(IMAGE)
    assert request.params == JobParams().replace(
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


def test_every_image_input_and_its_weight():
    args = {"image": IMAGE, "image_3": encoded(IMAGE), "negative_image": IMAGE}
    request = parse_script_args([{**args, "image_3_weight": 0.5, "image_weight": 0}])
    assert set(request.images) == {"image", "image_3", "negative_image"}
    assert [weight for _, weight in request.guidance_images()] == [0.5]  # weight 0: left out
    assert request.negative_image is request.images["negative_image"]
    assert parse_script_args([{**args, "negative_weight": 0}]).negative_image is None


def test_errors_name_the_image_input():
    with pytest.raises(FlexDiffuseError, match="The guidance image 3 is not valid base64"):
        parse_script_args([{"image_3": "%%%"}])
    with pytest.raises(FlexDiffuseError, match="The negative image is not valid base64"):
        parse_script_args([{"negative_image": "%%%"}])


def test_named_arguments_default_the_rest_and_imply_enabled():
    request = parse_script_args([{"image": encoded(IMAGE), "linear": 0.2, "reuse": "false"}])
    assert request.enabled
    assert request.params == JobParams().replace(linear=0.2, reuse=False)
    assert request.images["image"].digest == image_digest(IMAGE)
    assert not parse_script_args([{"enabled": False, "linear": 99}]).enabled


def test_missing_trailing_arguments_take_defaults():
    assert parse_script_args([True, IMAGE]).params == JobParams()


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
    assert image.pixels.size == (10, 10)  # the centre square is all a tower sees
    if not isinstance(value, str) or "webp" not in value:
        assert image.digest == image_digest(IMAGE)


@pytest.mark.parametrize("value", [None, "", "   "])
def test_no_image(value):
    assert read_image(value) is None


def test_array_that_is_not_an_image():
    with pytest.raises(FlexDiffuseError, match="is not an image"):
        read_image(np.zeros((2, 2, 7), dtype=np.uint8))


def test_enable_switch_must_be_boolean():
    with pytest.raises(FlexDiffuseError, match="enable switch must be true or false"):
        parse_script_args(["yes please"])


@pytest.mark.parametrize("word", ["yes", "on", "1", "TRUE", 1, True])
def test_every_boolean_reads_by_one_rule(word):
    request = parse_script_args([word, IMAGE])
    assert request.enabled
    assert parse_script_args([{"image": IMAGE, "reuse": word}]).params.get("reuse") is True


def test_a_data_url_without_base64_is_named_as_such():
    with pytest.raises(FlexDiffuseError, match="data URL without ';base64'"):
        read_image("data:image/png," + encoded(IMAGE))


@given(st.binary(max_size=64))
@example(b"P1")  # a PPM header cut short: Pillow raises ValueError, not OSError
def test_random_bytes_never_escape_as_a_raw_error(data):
    with contextlib.suppress(FlexDiffuseError):
        read_image(base64.b64encode(data).decode())
