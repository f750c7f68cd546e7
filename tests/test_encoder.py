"""ImageEncoder on tiny random CLIP models saved with save_pretrained and loaded from disk."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from flexdiffuse import DEFAULT_MODEL_SD1, ImageEncoder, ModelLoadError
from flexdiffuse import encoder as encoder_module
from flexdiffuse.checkpoints import convert_command
from flexdiffuse.encoder import TokenCache
from flexdiffuse.images import image_digest, prepare_image, to_rgb
from tests.conftest import TINY_IMAGE_SIZE, TINY_TOKENS, save_tiny_clip
from tests.pickles import bypass_weights_only, opened_files, pickles_in, plant


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir) -> ImageEncoder:
    return ImageEncoder.from_pretrained(tiny_clip_dir)


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A non-symmetric test picture, so crops and rotations change it."""
    x = torch.linspace(0, 255, width).expand(height, width)
    y = torch.linspace(0, 255, height).unsqueeze(1).expand(height, width)
    rgb = torch.stack([x, y, (x + y) / 2], dim=-1).to(torch.uint8).numpy()
    return Image.fromarray(rgb, "RGB").convert(mode)


def test_tokens_are_every_token_through_post_layernorm_and_projection(encoder, tiny_clip_dir):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

    image = gradient(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    tokens = encoder(image)
    assert tokens.shape == (TINY_TOKENS, 24)
    assert encoder.width == 24

    model = CLIPVisionModelWithProjection.from_pretrained(tiny_clip_dir).eval()
    pixels = CLIPImageProcessor.from_pretrained(tiny_clip_dir)(images=image, return_tensors="pt")
    with torch.no_grad():
        out = model(**pixels)
        hidden = out.last_hidden_state[0]
        expected = model.visual_projection(model.vision_model.post_layernorm(hidden))
    torch.testing.assert_close(tokens, expected)
    torch.testing.assert_close(tokens[0], out.image_embeds[0])  # the class token is CLIP's


def test_loads_a_full_clip_model_by_hub_id_from_the_cache(hub_cache):
    encoder = ImageEncoder.from_pretrained(
        DEFAULT_MODEL_SD1, cache_dir=hub_cache, local_files_only=True
    )
    assert encoder(gradient(50, 40)).shape == (TINY_TOKENS, 24)
    assert encoder.name == DEFAULT_MODEL_SD1


def test_device_and_dtype_are_honoured(tiny_clip_dir):
    encoder = ImageEncoder.from_pretrained(tiny_clip_dir, device="cpu", dtype=torch.float64)
    tokens = encoder(gradient(40, 40))
    assert tokens.dtype == torch.float64
    assert encoder.device.type == "cpu"
    encoder.to(dtype=torch.float32)
    assert encoder(gradient(40, 40)).dtype == torch.float32


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "LA", "P", "1", "CMYK", "I", "I;16", "F"])
def test_every_image_mode_encodes(encoder, mode):
    tokens = encoder(gradient(45, 37, mode if mode not in ("I;16",) else "L").convert(mode))
    assert tokens.shape == (TINY_TOKENS, 24)
    assert torch.isfinite(tokens).all()


def test_high_bit_depth_is_rescaled_by_the_16_bit_range_not_clipped():
    wide = Image.fromarray((torch.arange(64).reshape(8, 8) * 1000).int().numpy(), "I")
    as_rgb = to_rgb(wide)
    assert as_rgb.getextrema()[0] == (0, round(63000 * 255 / 65535))


def dark_picture() -> np.ndarray:
    """A dark 8-bit greyscale photo stand-in: mean about 50, nothing near white."""
    rng = np.random.default_rng(5)
    rows, columns = np.linspace(0, 1, 48), np.linspace(0, 1, 64)
    base = 35 + 60 * np.outer(rows, columns[::-1]) + rng.normal(0, 6, (48, 64))
    return np.clip(base, 0, 255).round().astype(np.uint8)


def reopened_png(image: Image.Image) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    buffer.seek(0)
    return Image.open(buffer)


@pytest.mark.parametrize("as_mode", ["as-opened", "I"])
def test_a_dark_16_bit_png_looks_like_its_8_bit_twin(as_mode):
    eight = dark_picture()
    sixteen = eight.astype(np.uint16) * 257  # the same picture at 16 bits: 255 -> 65535
    png8 = reopened_png(Image.fromarray(eight, "L"))
    png16 = reopened_png(Image.fromarray(sixteen))
    assert png8.mode == "L"
    assert png16.mode in ("I", "I;16")  # Pillow's mode for it differs across versions
    if as_mode == "I":
        png16 = png16.convert("I")  # what older Pillow (A1111's) opens it as
        assert png16.mode == "I"
    rgb8 = np.asarray(to_rgb(png8), dtype=np.float64)
    rgb16 = np.asarray(to_rgb(png16), dtype=np.float64)
    assert 40 < rgb8.mean() < 60  # dark, as the defect report's 51.6
    assert abs(rgb16.mean() - rgb8.mean()) < 1
    assert np.abs(rgb16 - rgb8).max() <= 1
    # And through the encoder's own preparation, EXIF handling and resize included.
    prepared8 = np.asarray(prepare_image(png8, 32), dtype=np.float64)
    prepared16 = np.asarray(prepare_image(png16, 32), dtype=np.float64)
    assert abs(prepared16.mean() - prepared8.mean()) < 1


@pytest.mark.parametrize("scale", [1.0, 1 / 255])
def test_float_images_are_read_as_0_to_255_or_0_to_1(scale):
    eight = dark_picture()
    floats = Image.fromarray(eight.astype(np.float32) * np.float32(scale), "F")
    rgb = np.asarray(to_rgb(floats), dtype=np.float64)
    assert np.abs(rgb - np.asarray(Image.fromarray(eight).convert("RGB"))).max() <= 1


def test_transparency_is_composited_on_white():
    clear = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert to_rgb(clear).getpixel((0, 0)) == (255, 255, 255)


@pytest.mark.parametrize("size", [(1, 1), (1, 500), (3000, 20), (4096, 4096)])
def test_any_size_encodes(encoder, size):
    assert encoder(gradient(*size)).shape == (TINY_TOKENS, 24)


def test_centre_square_crop_then_resize():
    wide = gradient(300, 100)
    prepared = prepare_image(wide, 20)
    assert prepared.size == (20, 20)
    centre = wide.crop((100, 0, 200, 100)).resize((20, 20), Image.Resampling.BICUBIC)
    assert list(prepared.getdata()) == list(centre.getdata())


def test_exif_rotation_is_applied(encoder):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    buffer = io.BytesIO()
    gradient(60, 30).save(buffer, "PNG", exif=exif)
    rotated = Image.open(io.BytesIO(buffer.getvalue()))
    upright = ImageOps.exif_transpose(rotated)
    assert upright.size == (30, 60)
    torch.testing.assert_close(encoder(rotated), encoder(upright))
    assert not torch.allclose(encoder(rotated), encoder(gradient(60, 30)))


def test_same_content_is_encoded_once(tiny_clip_dir, monkeypatch):
    encoder = ImageEncoder.from_pretrained(tiny_clip_dir)
    calls = []
    real = encoder._encode
    monkeypatch.setattr(encoder, "_encode", lambda pixels: calls.append(1) or real(pixels))
    first = encoder(gradient(40, 40))
    again = encoder(gradient(40, 40).copy())
    assert again is first
    assert len(calls) == 1
    encoder(gradient(41, 40))
    assert len(calls) == 2


def test_cache_is_bounded_and_least_recently_used_goes_first(tiny_clip_dir, monkeypatch):
    monkeypatch.setattr(encoder_module, "CACHE_SIZE", 2)
    encoder = ImageEncoder.from_pretrained(tiny_clip_dir)
    a, b, c = gradient(40, 40), gradient(50, 40), gradient(60, 40)
    encoder(a)
    encoder(b)
    encoder(a)  # a is now the most recent
    encoder(c)  # evicts b
    assert len(encoder.cache) == 2
    calls = []
    real = encoder._encode
    monkeypatch.setattr(encoder, "_encode", lambda pixels: calls.append(1) or real(pixels))
    encoder(a)
    assert calls == []
    encoder(b)
    assert calls == [1]


def test_a_shared_cache_outlives_its_encoder(tiny_clip_dir):
    cache = TokenCache()
    first = ImageEncoder.from_pretrained(tiny_clip_dir, cache=cache)
    tokens = first(gradient(40, 40))
    del first
    assert cache.get(image_digest(gradient(40, 40))) is tokens
    second = ImageEncoder.from_pretrained(tiny_clip_dir, cache=cache)
    assert second(gradient(40, 40)) is tokens


def test_image_digest_tells_pixels_mode_and_orientation_apart():
    base = gradient(40, 30)
    assert image_digest(base) == image_digest(base.copy())
    assert image_digest(base) != image_digest(base.convert("RGBA"))
    changed = base.copy()
    changed.putpixel((0, 0), (1, 2, 3))
    assert image_digest(base) != image_digest(changed)
    assert image_digest(base) != image_digest(base.transpose(Image.Transpose.ROTATE_180))


def test_unknown_model_offline_names_the_id_and_the_fix(tmp_path):
    with pytest.raises(ModelLoadError) as error:
        ImageEncoder.from_pretrained(
            "someone/missing-clip", cache_dir=tmp_path, local_files_only=True
        )
    message = str(error.value)
    assert "'someone/missing-clip'" in message
    assert "local folder" in message


def test_a_named_folder_with_pickled_weights_is_refused_unopened(tmp_path, monkeypatch):
    """transformers 4.30 would fall back to pytorch_model.bin: refused before it tries, even
    on a torch without a published weights_only bypass; the message says how to convert."""
    folder = save_tiny_clip(tmp_path / "pickled", safetensors=False)
    weights = folder / "pytorch_model.bin"
    marker = tmp_path / "code-ran"
    plant(weights, marker, torch.load(weights, weights_only=True))
    reads = bypass_weights_only(monkeypatch)
    with opened_files() as opened, pytest.raises(ModelLoadError, match=r"model\.safetensors"):
        ImageEncoder.from_pretrained(folder)
    assert not marker.exists()
    assert reads == []
    assert pickles_in(opened) == []
    monkeypatch.undo()  # torch's own loader again, for the user's conversion
    save_tiny_clip(folder, safetensors=False)  # the tower itself, without the payload
    with pytest.raises(ModelLoadError) as caught:
        ImageEncoder.from_pretrained(folder)
    command = convert_command(weights, folder / "model.safetensors")
    assert str(caught.value).endswith(f"or convert the pickle once, if you trust it: {command}")
    subprocess.run(command, shell=True, check=True, capture_output=True)
    assert ImageEncoder.from_pretrained(folder).width == 24


def test_folder_without_a_model_says_what_it_needs(tmp_path):
    with pytest.raises(ModelLoadError, match=r"config\.json, model\.safetensors"):
        ImageEncoder.from_pretrained(tmp_path)


def test_not_an_image_is_rejected(encoder):
    with pytest.raises(ValueError, match="must be a PIL image"):
        encoder(torch.zeros(3, 4, 4))


def test_real_images_encode(encoder, testdata):
    for path in sorted(testdata.glob("*.*")):
        if path.suffix in (".webp", ".png"):
            with Image.open(path) as image:
                tokens = encoder(image)
            assert tokens.shape == (TINY_TOKENS, 24), path.name
            assert torch.isfinite(tokens).all(), path.name


def test_load_failure_messages_end_their_sentences_once(tmp_path):
    from flexdiffuse.encoder import _file_failure_message, _load_failure_message

    said = _load_failure_message("someone/model", OSError("no config.json in the folder."))
    assert ".." not in said
    assert "no config.json in the folder. If this machine is offline" in said
    assert ".." not in _file_failure_message(tmp_path / "x.safetensors", "truncated.")
