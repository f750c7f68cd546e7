"""Vision towers from a folder of a Hugging Face repo, as IP-Adapter publishes them.

The default ViT-H and ViT-bigG sources are ``h94/IP-Adapter/models/image_encoder`` and
``h94/IP-Adapter/sdxl_models/image_encoder``: a vision tower with its projection, saved by
transformers (config.json, model.safetensors and a pickled pytorch_model.bin) in a subfolder,
with no preprocessor_config.json. These tests build that layout in a fake Hugging Face cache
from tiny random models and load it offline through ``ImageEncoder.from_pretrained``, the
path the webui takes.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from flexdiffuse import ImageEncoder, ModelLoadError
from tests.conftest import TINY_TOKENS, save_tiny_clip
from tests.test_encoder import gradient

SUBFOLDER_SOURCE = "h94/IP-Adapter/models/image_encoder"
WHOLE_IDS = ("openai/clip-vit-large-patch14", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K")
IMAGES = [gradient(50, 40), gradient(32, 32, "L"), gradient(17, 61).rotate(90, expand=True)]


def hub_snapshot(cache: Path, repo_id: str, revision: str = "1" * 40) -> Path:
    """The snapshot folder of ``repo_id`` in a Hugging Face cache at ``cache``, made current."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    return snapshot


@pytest.fixture(scope="module")
def fake_hub(tmp_path_factory) -> Path:
    """A cache with one tiny CLIPModel under the whole-model ids and its tower in IP-Adapter's
    layout: the tower loaded from the whole model and saved on its own (fp32, as h94 did)."""
    from transformers import CLIPVisionModelWithProjection

    cache = tmp_path_factory.mktemp("hf-hub")
    whole = save_tiny_clip(tmp_path_factory.mktemp("whole"), full_clip=True, seed=7)
    for repo_id in WHOLE_IDS:
        save_tiny_clip(hub_snapshot(cache, repo_id), full_clip=True, seed=7)
    tower = CLIPVisionModelWithProjection.from_pretrained(whole)
    encoder_folder = hub_snapshot(cache, "h94/IP-Adapter") / "models" / "image_encoder"
    tower.save_pretrained(encoder_folder, safe_serialization=True)
    # h94 also ships the same weights pickled; they must never be the ones loaded.
    torch.save(tower.state_dict(), encoder_folder / "pytorch_model.bin")
    assert not (encoder_folder / "preprocessor_config.json").exists()
    return cache


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("pickled weights were loaded")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


def load(source: str, cache: Path, **options) -> ImageEncoder:
    return ImageEncoder.from_pretrained(
        source, cache_dir=cache, local_files_only=options.pop("local_files_only", True), **options
    )


def test_a_tower_loads_from_a_repo_subfolder_offline(fake_hub, no_unpickling):
    encoder = load(SUBFOLDER_SOURCE, fake_hub)
    assert encoder.name == SUBFOLDER_SOURCE
    assert encoder.width == 24
    tokens = encoder(IMAGES[0])
    assert tokens.shape == (TINY_TOKENS, 24)
    assert torch.isfinite(tokens).all()


@pytest.mark.parametrize("whole_id", WHOLE_IDS)
def test_the_subfolder_tower_gives_the_whole_models_tokens_bit_for_bit(fake_hub, whole_id):
    from_whole = load(whole_id, fake_hub)  # old settings name these ids: they still load
    from_tower = load(SUBFOLDER_SOURCE, fake_hub)
    for image in IMAGES:
        assert torch.equal(from_tower(image), from_whole(image))
    # The standard preprocessing stands in exactly for the whole model's processor file.
    assert from_tower.processor.to_dict()["image_mean"] == from_whole.processor.image_mean
    assert from_tower.processor.to_dict()["image_std"] == from_whole.processor.image_std


def test_the_tower_runs_in_the_requested_dtype(fake_hub):
    encoder = ImageEncoder.from_pretrained(
        SUBFOLDER_SOURCE, "cpu", torch.float64, cache_dir=fake_hub, local_files_only=True
    )
    assert encoder.dtype == torch.float64
    assert encoder(IMAGES[0]).dtype == torch.float64


def test_hf_hub_offline_is_honoured(fake_hub, monkeypatch, no_unpickling):
    """Set after transformers was imported (which reads it once), it still keeps the load off
    the network: no address is even looked up."""
    import socket

    import huggingface_hub.constants

    lookups = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kw: lookups.append(args) or [])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    encoder = load(SUBFOLDER_SOURCE, fake_hub, local_files_only=False)
    assert encoder(IMAGES[0]).shape == (TINY_TOKENS, 24)
    assert lookups == []


def test_spellings_of_a_subfolder_source(fake_hub):
    expected = load(SUBFOLDER_SOURCE, fake_hub)(IMAGES[0])
    for spelling in (f"  {SUBFOLDER_SOURCE}/ ", "h94/IP-Adapter//models/image_encoder"):
        assert torch.equal(load(spelling, fake_hub)(IMAGES[0]), expected)


def test_a_missing_subfolder_names_the_repo_and_the_folder(fake_hub):
    with pytest.raises(ModelLoadError) as error:
        load("h94/IP-Adapter/models/no_such_encoder", fake_hub)
    message = str(error.value)
    assert "'h94/IP-Adapter/models/no_such_encoder'" in message
    assert "the folder 'models/no_such_encoder' of 'h94/IP-Adapter'" in message
    assert "local folder" in message


def test_a_local_copy_of_the_subfolder_loads_without_a_preprocessor(fake_hub, tmp_path):
    # InvokeAI and users keep the image_encoder folder as is: config.json + model.safetensors.
    source = fake_hub / "models--h94--IP-Adapter" / "snapshots" / ("1" * 40) / "models"
    copy = tmp_path / "ip_adapter_sd_image_encoder"
    copy.mkdir()
    for name in ("config.json", "model.safetensors"):
        (copy / name).write_bytes((source / "image_encoder" / name).read_bytes())
    expected = load(SUBFOLDER_SOURCE, fake_hub)(IMAGES[0])
    assert torch.equal(ImageEncoder.from_pretrained(copy)(IMAGES[0]), expected)
