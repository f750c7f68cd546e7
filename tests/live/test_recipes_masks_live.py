"""A recipe per image and reference masks on a live webui, through the HTTP API.

Cheap on purpose (they run on every host CI builds, on the server already running): tiny
fixed-seed jobs whose images the towers have encoded before (the tower's cache).
"""

from __future__ import annotations

import base64
import io

from PIL import Image

from flexdiffuse.params import RECIPE_LABELS
from tests.live.conftest import (
    error_message,
    image_base64,
    info,
    ok,
    same_pixels,
    xyz_script_args,
)


def size_of(encoded: str) -> tuple[int, int]:
    with Image.open(io.BytesIO(base64.b64decode(encoded))) as image:
        return image.size


def left_half(size: tuple[int, int]) -> str:
    """A mask over the left half of an image of ``size`` (white: may be taken)."""
    mask = Image.new("L", size, 0)
    mask.paste(255, (0, 0, size[0] // 2, size[1]))
    return image_base64(mask)


def test_two_images_under_different_recipes_differ_from_each_alone(
    webui, guidance_image, second_image
):
    both = {
        "image": guidance_image,
        "image_recipe": "strong",
        "image_2": second_image,
        "image_2_recipe": "Style only",
    }
    mixed = ok(webui.job(guidance=[both]))
    assert same_pixels(mixed, ok(webui.job(guidance=[both])))  # repeats exactly
    first = ok(webui.job(guidance=[{"image": guidance_image, "image_recipe": "strong"}]))
    second = ok(webui.job(guidance=[{"image": second_image, "image_recipe": "style"}]))
    assert not same_pixels(mixed, first)
    assert not same_pixels(mixed, second)
    params = info(mixed)["extra_generation_params"]
    assert params["FlexDiffuse image recipe"] == RECIPE_LABELS["strong"]
    assert params["FlexDiffuse image 2 recipe"] == RECIPE_LABELS["style"]


def test_a_masked_job_differs_and_a_whole_image_mask_equals_no_mask(webui, guidance_image):
    size = size_of(guidance_image)
    strong = {"image": guidance_image, "linear": 1.0, "max_guidance": 1.0}
    plain = ok(webui.job(guidance=[strong]))
    masked = ok(webui.job(guidance=[{**strong, "image_mask": left_half(size)}]))
    whole = image_base64(Image.new("L", size, 255))
    assert not same_pixels(plain, masked)
    assert same_pixels(plain, ok(webui.job(guidance=[{**strong, "image_mask": whole}])))
    assert "FlexDiffuse image mask" in info(masked)["extra_generation_params"]


def test_a_mask_that_leaves_nothing_stops_the_job_with_its_message(webui, guidance_image):
    black = image_base64(Image.new("L", size_of(guidance_image), 0))
    failed = webui.job(guidance=[{"image": guidance_image, "image_mask": black}])
    assert failed.status == 500, f"HTTP {failed.status}: the job ran unmasked"
    assert "leaves no patch" in error_message(failed.body)


def test_xyz_plot_sweeps_an_image_recipe(webui, guidance_image, second_image):
    labels = [RECIPE_LABELS["job"], RECIPE_LABELS["style"]]
    grid = xyz_script_args(webui, "[FlexDiffuse] Image 2 recipe", ", ".join(labels), labels)
    guidance = [{"image": guidance_image, "image_2": second_image}]
    body = ok(webui.job(guidance=guidance, script_name="x/y/z plot", script_args=grid))
    infotexts = info(body)["infotexts"]
    assert any(f"FlexDiffuse image 2 recipe: {RECIPE_LABELS['style']}" in t for t in infotexts)
    assert any("image 2 recipe" not in t and "FlexDiffuse: True" in t for t in infotexts)
