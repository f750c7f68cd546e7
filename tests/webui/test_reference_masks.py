"""Reference masks in the webui: read from the panel's editors and the API, applied by the
core's rule, recorded in infotext, refused with the core's message, never ignored."""

from __future__ import annotations

import base64
import io
import re

import gradio as gr
import pytest
from modules.infotext_utils import paste_values
from PIL import Image

from flexdiffuse.images import image_digest
from flexdiffuse.webui.args import ARG_NAMES, MASK_INPUTS, describe_input, parse_script_args
from flexdiffuse.webui.errors import FlexDiffuseError
from flexdiffuse.webui.hosts.a1111 import A1111Host, has_image_editor
from flexdiffuse.webui.infotext import IMAGE_HASH_LENGTH, image_key
from flexdiffuse.webui.mask_panel import MASK_NOTE, editor_picture
from flexdiffuse.webui.reference_masks import mask_values, upright_size
from tests.webui.conftest import gradient
from tests.webui.test_panel import event_fn
from tests.webui.test_preview_panel import click_preview

pytestmark = pytest.mark.every_host  # each webui test runs in every fake host (conftest.py)

IMAGE, OTHER = gradient(48, 40, seed=1), gradient(48, 40, seed=2)
GUIDED = {"linear": 1.0, "max_guidance": 1.0}


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def left_half(size=(48, 40), mode="L") -> Image.Image:
    """White over the left half (may be taken), black elsewhere."""
    mask = Image.new(mode, size, 0)
    mask.paste(255 if mode == "L" else (255, 255, 255), (0, 0, size[0] // 2, size[1]))
    return mask


def strokes(size=(48, 40)) -> Image.Image:
    """gradio 4's painted layer: opaque strokes over the left half, transparent elsewhere."""
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    layer.paste((255, 255, 255, 255), (0, 0, size[0] // 2, size[1]))
    return layer


def guided_rows(webui, **args):
    job = webui.txt2img(webui.args(image=IMAGE, **GUIDED, **args), prompt="a cat", steps=1)
    return job.cond_steps()[0]


def test_a_masked_job_differs_from_the_unmasked_one(webui):
    assert not guided_rows(webui, image_mask=left_half()).equal(guided_rows(webui))


def test_a_mask_of_the_whole_image_guides_exactly_as_no_mask(webui):
    white = Image.new("L", IMAGE.size, 255)
    assert guided_rows(webui, image_mask=png_base64(white)).equal(guided_rows(webui))


@pytest.mark.parametrize(
    "editor",
    [
        {"image": IMAGE, "mask": Image.new("RGB", IMAGE.size, 0)},  # gradio 3's sketch
        {"background": IMAGE, "layers": [Image.new("RGBA", IMAGE.size)], "composite": IMAGE},
        {"background": IMAGE, "layers": [], "composite": IMAGE},  # gradio 4, nothing painted
        {"background": None, "layers": None, "composite": None},  # gradio 4, empty
    ],
    ids=["sketch", "layer", "no-layer", "empty"],
)
def test_an_editor_with_nothing_painted_is_no_mask(webui, editor):
    assert parse_script_args(webui.args(image=IMAGE, image_mask=editor)).masks == {}
    assert guided_rows(webui, image_mask=editor).equal(guided_rows(webui))


def test_painted_strokes_mask_as_the_same_mask_uploaded(webui):
    uploaded = guided_rows(webui, image_mask=png_base64(left_half()))
    sketch = {"image": IMAGE, "mask": left_half(mode="RGB")}  # gradio 3: white strokes
    layers = {"background": IMAGE, "layers": [strokes()], "composite": IMAGE}  # gradio 4
    assert guided_rows(webui, image_mask=sketch).equal(uploaded)
    assert guided_rows(webui, image_mask=layers).equal(uploaded)
    # Painted on a smaller copy (an editor's preview): scaled to the image.
    small = {"background": IMAGE, "layers": [strokes((24, 20))], "composite": None}
    assert guided_rows(webui, image_mask=small).equal(uploaded)


def test_an_uploaded_mask_reads_transparency_first_then_brightness():
    assert mask_values(strokes()).getextrema() == (0, 255)
    assert mask_values(strokes()).tobytes() == left_half().tobytes()
    assert mask_values(left_half(mode="RGB")).tobytes() == left_half().tobytes()
    opaque = left_half(mode="RGB").convert("RGBA")  # all opaque: its brightness
    assert mask_values(opaque).tobytes() == left_half().tobytes()


def test_the_mask_is_placed_on_the_upright_image():
    image = Image.new("RGB", (48, 40))
    exif = image.getexif()
    exif[0x0112] = 6  # rotated 90 degrees: shown 40 x 48
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    rotated = Image.open(buffer)
    assert upright_size(rotated) == (40, 48)
    assert editor_picture(rotated).size == (40, 48)
    args = parse_script_args([{"image": rotated, "image_mask": left_half((40, 48))}])
    assert args.masks["image"].image_size == (40, 48)


def test_the_api_names_a_mask_per_image(webui):
    args = parse_script_args(
        [{"image": png_base64(IMAGE), "image_3": OTHER, "image_3_mask": png_base64(left_half())}]
    )
    assert set(args.masks) == {"image_3"}
    assert args.masks["image_3"].digest == image_digest(left_half())


def assert_stops(webui, match, **args):
    with pytest.raises(FlexDiffuseError, match=match) as caught:
        webui.txt2img(webui.args(**{"image": IMAGE, **GUIDED, **args}), prompt="a", steps=1)
    return str(caught.value)


def test_a_mask_that_leaves_no_patch_stops_the_job_with_the_cores_message(webui):
    black = Image.new("L", IMAGE.size, 0)
    message = assert_stops(webui, "leaves no patch", image_mask=png_base64(black))
    assert message.startswith("The mask of the guidance image: The reference mask leaves no")
    assert "Paint over the part of the image to take, or remove the mask." in message


def test_a_mask_of_another_shape_stops_the_job(webui):
    message = assert_stops(webui, "is 10x40 but its image is 48x40", image_mask=left_half((10, 40)))
    assert "guidance image" in message


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({"image_2_mask": left_half()}, "guidance image 2 has a mask but no image: add the"),
        ({"image_mask": "not base64!"}, "mask of the guidance image is not valid base64"),
        ({"image_mask": 7}, "mask of the guidance image must be an image"),
        ({"image_mask": {"strokes": []}}, "neither 'mask' .* nor 'layers'"),
    ],
    ids=["no-image", "base64", "type", "object"],
)
def test_bad_masks_are_refused_before_the_job(webui, args, match):
    assert_stops(webui, match, **args)


def test_infotext_records_each_masks_digest_beside_its_image(webui):
    job = webui.txt2img(
        webui.args(image=IMAGE, image_2=OTHER, image_2_mask=left_half(), **GUIDED),
        prompt="a cat",
        steps=1,
    )
    infotext = job.processed.infotexts[0]
    digest = image_digest(left_half())[:IMAGE_HASH_LENGTH]
    assert f"{image_key('image_2')}: " in infotext
    assert f"{image_key('image_2_mask')}: {digest}" in infotext
    assert image_key("image_2_mask") == "FlexDiffuse image 2 mask"
    assert image_key("image_mask") not in infotext
    keys = re.findall(r"(FlexDiffuse image[^:]*):", infotext)
    assert keys.index("FlexDiffuse image 2 mask") == keys.index("FlexDiffuse image 2") + 1


def test_a_paste_says_which_masks_it_cannot_restore(webui):
    job = webui.txt2img(
        webui.args(image=IMAGE, image_mask=left_half(), **GUIDED), prompt="a cat", steps=1
    )
    script = webui.scripts[True]
    fields = [field for field, _ in script.infotext_fields]
    controls = dict(zip(ARG_NAMES, webui.controls[True], strict=True))
    note = next(f for f in fields if f.elem_id == script.elem_id(MASK_NOTE))
    values = paste_values(script.infotext_fields, job.processed.infotexts[0])
    said = values[fields.index(note)]
    assert "masks on the guidance image (mask " in said
    assert "Paint the masks again" in said
    assert controls[MASK_INPUTS["image"]] not in fields  # a digest gives no mask back
    plain = webui.txt2img(webui.args(image=IMAGE, **GUIDED), prompt="a cat", steps=1)
    assert (
        paste_values(script.infotext_fields, plain.processed.infotexts[0])[fields.index(note)] == ""
    )


def test_each_guidance_image_has_the_hosts_mask_editor_holding_a_copy(webui):
    controls = dict(zip(ARG_NAMES, webui.controls[False], strict=True))
    for name, mask in MASK_INPUTS.items():
        editor = controls[mask]
        assert editor.label == f"Mask of the {describe_input(name)}"
        if not has_image_editor():  # gradio 3 (the test venv's): the sketch tool, as inpainting
            assert isinstance(editor, gr.Image)
            assert editor.tool == "sketch"
        copy = event_fn(webui, "change", controls[name], [editor])
        assert copy(IMAGE).size == IMAGE.size
        assert copy(None) is None


def test_the_preview_dims_the_masked_out_patches(webui):
    def picture(page):
        return re.findall(r'src="(data:image/png;base64,[^"]+)"', page)[0]

    plain = click_preview(webui, "a cat", webui.args(image=IMAGE))
    masked = click_preview(webui, "a cat", webui.args(image=IMAGE, image_mask=left_half()))
    assert "<table" in masked
    assert picture(plain) != picture(masked)


GRADIO_4_EDITOR = (  # gr.ImageEditor.__init__ of gradio 4.40 (WebUI Forge, Forge Neo), in part
    "label",
    "sources",
    "type",
    "image_mode",
    "brush",
    "transforms",
    "layers",
    "format",
    "interactive",
    "elem_id",
    "height",
    "canvas_size",
)


def test_gradio_4_paints_masks_in_its_image_editor(monkeypatch):
    """gradio 4 has ``gr.ImageEditor`` and no sketch tool: the probe takes the editor."""

    class Image4:
        def __init__(self, value=None, *, sources=None, type="numpy", label=None): ...

    class Recorded:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    monkeypatch.setattr(gr, "Image", Image4)
    monkeypatch.setattr(gr, "ImageEditor", Recorded, raising=False)
    monkeypatch.setattr(gr, "Brush", Recorded, raising=False)
    assert has_image_editor()
    editor = A1111Host().mask_editor("Mask of the guidance image", "mask_id", 240)
    assert isinstance(editor, Recorded)
    assert set(editor.kwargs) <= set(GRADIO_4_EDITOR)
    assert editor.kwargs["format"] == "png"  # lossless strokes
    assert editor.kwargs["layers"] is False
    assert "height" not in editor.kwargs  # a fixed height hides gradio 4.40's toolbar
    width, height = editor.kwargs["canvas_size"]
    assert height < width / 2  # the empty editor stays short
    assert editor.kwargs["transforms"] == ()  # no crop: the mask stays on the whole image
    assert editor.kwargs["brush"].kwargs == {"colors": ["#ffffff"], "color_mode": "fixed"}


def test_a_webui_wrapping_gradio_3s_image_init_still_gets_the_sketch_tool(monkeypatch):
    """reForge replaces ``gr.Image.__init__`` with a ``*args, **kwargs`` wrapper (its
    gradio_extensons.py); the probe must still see gradio 3 and not ask for an editor
    gradio 3 lacks."""
    assert not hasattr(gr, "ImageEditor")  # the test venv's gradio 3
    original = gr.Image.__init__

    def wrapped(self, *args, **kwargs):
        return original(self, *args, **kwargs)

    monkeypatch.setattr(gr.Image, "__init__", wrapped)
    assert not has_image_editor()
    editor = A1111Host().mask_editor("Mask of the guidance image", "mask_id", 240)
    assert isinstance(editor, gr.Image)
    assert editor.tool == "sketch"
