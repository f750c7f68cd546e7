"""Saved references: encoded once, written with safetensors, read back exactly, never unpickled."""

from __future__ import annotations

import pickle

import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file

from flexdiffuse.known_towers import VIT_BIGG, VIT_L
from flexdiffuse.references import (
    Reference,
    ReferenceError,
    ReferenceImage,
    TowerIdentity,
    load_reference,
    reference_hash,
    save_reference,
    thumbnail,
    thumbnail_squares,
)
from tests.helpers import random_tokens


def _reference(towers=(VIT_L,), images=2) -> Reference:
    pictures = [Image.new("RGB", (80, 40), (40 * n, 90, 200)) for n in range(images)]
    return Reference(
        "style board",
        tuple(
            ReferenceImage(
                f"digest{n}",
                {t.name: random_tokens(257, t.token_width, seed=n) for t in towers},
                "style" if n else "job",
                torch.arange(257) % 2 == 0 if n else None,
            )
            for n in range(images)
        ),
        tuple(TowerIdentity.of(t, f"models/{t.name}.safetensors") for t in towers),
        thumbnail(pictures),
    )


def test_a_saved_reference_reads_back_exactly(tmp_path):
    made = _reference((VIT_L, VIT_BIGG))
    read = load_reference(save_reference(made, tmp_path / "refs" / "style board.safetensors"))
    assert read.name == "style board"
    assert read.towers == made.towers
    assert torch.equal(read.thumbnail, made.thumbnail)
    for mine, theirs in zip(made.images, read.images, strict=True):
        assert (theirs.digest, theirs.recipe) == (mine.digest, mine.recipe)
        for tower in (VIT_L, VIT_BIGG):
            assert torch.equal(theirs.tokens[tower.name], mine.tokens[tower.name])
        assert (theirs.keep is None) == (mine.keep is None)
    assert torch.equal(read.images[1].keep, made.images[1].keep)


def test_the_thumbnail_is_a_small_grid_of_the_images():
    sheet = thumbnail([Image.new("RGB", (300, 200), "red")] * 5)
    assert sheet.dtype == torch.uint8
    assert tuple(sheet.shape) == (128, 192, 3)  # 3 columns, 2 rows of 64-pixel squares


def test_a_reference_made_without_the_tower_a_checkpoint_needs_is_refused_by_name(tmp_path):
    read = load_reference(save_reference(_reference(), tmp_path / "r.safetensors"))
    assert len(read.tokens(VIT_L)) == 2
    with pytest.raises(ReferenceError, match=r"made with CLIP ViT-L/14.*needs OpenCLIP ViT-bigG"):
        read.tokens(VIT_BIGG)


def test_a_truncated_reference_says_so(tmp_path):
    path = save_reference(_reference(), tmp_path / "r.safetensors")
    path.write_bytes(path.read_bytes()[:-1000])
    with pytest.raises(ReferenceError, match="truncated or corrupt"):
        load_reference(path)


def test_a_file_of_random_bytes_says_so(tmp_path):
    path = tmp_path / "r.safetensors"
    path.write_bytes(b"\x07" * 64)
    with pytest.raises(ReferenceError, match="truncated or corrupt"):
        load_reference(path)


def test_model_weights_are_no_reference(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file({"visual_projection.weight": torch.zeros(4, 4)}, str(path))
    with pytest.raises(ReferenceError, match="not a FlexDiffuse reference"):
        load_reference(path)


def test_a_pickle_named_as_a_reference_is_never_unpickled(tmp_path, monkeypatch):
    path = tmp_path / "r.safetensors"
    path.write_bytes(pickle.dumps({"x": 1}))
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load"))
    with pytest.raises(ReferenceError, match="truncated or corrupt"):
        load_reference(path)


def test_a_newer_format_asks_for_an_update(tmp_path):
    path = tmp_path / "r.safetensors"
    save_file(
        {"thumbnail": torch.zeros(1, 1, 3)},
        str(path),
        {"format": "flexdiffuse.reference", "version": "9"},
    )
    with pytest.raises(ReferenceError, match="newer than this FlexDiffuse reads"):
        load_reference(path)


def test_a_reference_missing_a_tensor_is_corrupt(tmp_path):
    path = save_reference(_reference(), tmp_path / "r.safetensors")
    with safe_open(str(path), framework="pt") as reader:
        metadata = reader.metadata()
        keys = [key for key in reader.keys() if not key.startswith("image.1.tokens")]  # noqa: SIM118
        tensors = {key: reader.get_tensor(key) for key in keys}
    save_file(tensors, str(path), metadata)
    with pytest.raises(ReferenceError, match="tensors are incomplete or corrupt"):
        load_reference(path)


def test_a_missing_file_says_to_save_first(tmp_path):
    with pytest.raises(ReferenceError, match="no reference file"):
        load_reference(tmp_path / "nothing.safetensors")


def test_the_hash_changes_with_the_content(tmp_path):
    first = reference_hash(save_reference(_reference(images=1), tmp_path / "a.safetensors"))
    second = reference_hash(save_reference(_reference(images=2), tmp_path / "b.safetensors"))
    assert len(first) == 10
    assert first != second


def test_thumbnail_squares_give_back_each_image_in_its_place():
    colours = [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    pictures = [Image.new("RGB", (90, 60), colour) for colour in colours]
    reference = _reference(images=3)
    reference = Reference(reference.name, reference.images, reference.towers, thumbnail(pictures))
    squares = thumbnail_squares(reference)
    assert [square.getpixel((30, 30)) for square in squares] == colours
    assert {square.size for square in squares} == {(64, 64)}
