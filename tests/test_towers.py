"""Finding CLIP vision towers on disk from safetensors headers alone, and keying sources.

Every test writes tiny random towers to disk in the layouts users have (transformers',
OpenCLIP's, a whole CLIPModel, a save_pretrained folder) next to files that must not be
offered, and checks what the scanner reports without reading any weights, and without
opening any pickle.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from flexdiffuse import towers
from flexdiffuse.checkpoints import expected_shapes
from flexdiffuse.known_towers import KNOWN_TOWERS, VIT_B, VIT_BIGG, VIT_H, VIT_L, identify
from flexdiffuse.towers import (
    TowerShape,
    find_pickles,
    find_tower_files,
    is_default_source,
    read_tower_shape,
    source_key,
    split_hub_source,
)
from tests.pickles import bypass_weights_only, opened_files, pickles_in, plant, plant_everywhere
from tests.test_checkpoints import state_of, tiny_tower, to_open_clip

TINY = TowerShape(hidden_width=128, token_width=48, layers=2, image_size=32)


class HeaderOnly:
    """A ``safe_open`` handle that gives names and shapes and fails the test on any tensor."""

    def __init__(self, handle) -> None:
        self._handle = handle

    def __enter__(self):
        self._handle.__enter__()
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def keys(self):
        return self._handle.keys()

    def get_slice(self, name):
        return ShapeOnly(self._handle.get_slice(name))

    def get_tensor(self, name):
        raise AssertionError(f"the scanner read the weights of {name}")


class ShapeOnly:
    def __init__(self, part) -> None:
        self._part = part

    def get_shape(self):
        return self._part.get_shape()


@pytest.fixture(autouse=True)
def no_weights_are_read(monkeypatch):
    """Scanning reads headers only: loading weights, torch's loader or unpickling fails the
    test (safetensors files are opened for their header and shapes)."""

    def refuse(*args, **kwargs):
        raise AssertionError("the scanner read weights")

    import safetensors
    import safetensors.torch

    original_open = safetensors.safe_open
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)
    monkeypatch.setattr(safetensors.torch, "load", refuse)
    monkeypatch.setattr(
        safetensors, "safe_open", lambda *a, **kw: HeaderOnly(original_open(*a, **kw))
    )
    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(torch.serialization, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    towers._cached_header_shapes.cache_clear()


@pytest.fixture(scope="module")
def tower():
    return tiny_tower(projection_dim=48)


def save_tower(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path))
    return path


def whole_clip_state(vision: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A whole CLIPModel's tensors: the vision tower plus a (fake) text tower."""
    text = {
        "text_model.embeddings.token_embedding.weight": torch.zeros(10, 8),
        "text_model.final_layer_norm.weight": torch.zeros(8),
        "text_projection.weight": torch.zeros(48, 8),
        "logit_scale": torch.tensor(1.0),
    }
    return {**vision, **text}


@pytest.mark.parametrize("layout", ["transformers", "prefixed", "whole-clip", "open-clip"])
def test_a_tower_file_in_every_layout(tmp_path, tower, layout):
    state = state_of(tower)
    if layout == "prefixed":
        state = {f"clip.{key}": value for key, value in state.items()}
    elif layout == "whole-clip":
        state = whole_clip_state(state)
    elif layout == "open-clip":
        state = to_open_clip(state)
    assert read_tower_shape(save_tower(tmp_path / "tower.safetensors", state)) == TINY


def test_a_real_whole_clip_model_file(tmp_path):
    from tests.conftest import save_tiny_clip

    folder = save_tiny_clip(tmp_path / "clip", full_clip=True, projection_dim=40)
    shape = read_tower_shape(folder / "model.safetensors")
    assert shape == TowerShape(hidden_width=32, token_width=40, layers=2, image_size=32)
    assert read_tower_shape(folder) == shape  # and as the folder save_pretrained wrote


def test_a_save_pretrained_folder_sharded_or_not(tmp_path, tower):
    tower.save_pretrained(tmp_path / "whole", safe_serialization=True)
    tower.save_pretrained(tmp_path / "sharded", safe_serialization=True, max_shard_size="200KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    assert read_tower_shape(tmp_path / "whole") == TINY
    assert read_tower_shape(tmp_path / "sharded") == TINY


def test_a_folder_whose_config_does_not_describe_its_weights(tmp_path, tower):
    folder = tmp_path / "mismatch"
    tower.save_pretrained(folder, safe_serialization=True)
    other = tiny_tower(projection_dim=64)
    other.config.save_pretrained(folder)  # the config of another tower
    assert read_tower_shape(folder) is None


def test_folders_that_are_not_model_folders(tmp_path, tower):
    assert read_tower_shape(tmp_path) is None  # empty
    tower.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    assert read_tower_shape(tmp_path / "pickled") is None  # pytorch_model.bin only


def test_files_that_are_not_towers(tmp_path, tower):
    unet = save_tower(tmp_path / "unet.safetensors", {"input_blocks.0.weight": torch.zeros(2)})
    state = {k: v for k, v in state_of(tower).items() if "visual_projection" not in k}
    no_projection = save_tower(tmp_path / "no_projection.safetensors", state)
    broken_state = state_of(tower)
    broken_state["vision_model.encoder.layers.1.mlp.fc1.weight"] = torch.zeros(7, 7)
    broken = save_tower(tmp_path / "broken.safetensors", broken_state)
    missing_state = state_of(tower)
    del missing_state["vision_model.encoder.layers.1.mlp.fc2.bias"]
    missing = save_tower(tmp_path / "missing.safetensors", missing_state)
    for path in (unet, no_projection, broken, missing):
        assert read_tower_shape(path) is None, path.name


def test_truncated_and_corrupt_files_are_not_offered(tmp_path, tower):
    good = save_tower(tmp_path / "good.safetensors", state_of(tower))
    data = good.read_bytes()
    cases = {
        "truncated": data[: len(data) // 2],  # a download interrupted halfway
        "one-byte-short": data[:-1],
        "trailing": data + b"\0" * 8,  # safetensors refuses bytes no tensor covers
        "empty": b"",
        "tiny": b"\x01\x02",
        "zeros": b"\0" * 64,
        "huge-header": (2**40).to_bytes(8, "little") + b"{}",
        "not-json": with_header(b"nope!"),
        "json-list": with_header(b"[]"),
        "bad-entry": with_header(b'{"a": {"shape": 1}}'),
        "no-offsets": with_header(b'{"a": {"dtype": "F32", "shape": [1]}}') + b"\0" * 4,
    }
    for name, content in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(content)
        assert read_tower_shape(path) is None, name
    assert read_tower_shape(good) == TINY


def with_header(header: bytes) -> bytes:
    return len(header).to_bytes(8, "little") + header


def test_the_scan_never_opens_a_pickle(tmp_path, tower, monkeypatch):
    """Not even on a torch whose weights_only check is bypassed: every pickle where the scan
    looks, in every form (each suffix, a subfolder, a folder saved by transformers with
    pickled weights), would create the marker if anything unpickled it."""
    marker = tmp_path / "code-ran"
    root = tmp_path / "clip_vision"
    planted = plant_everywhere(root, marker)
    file = save_tower(root / "tower.safetensors", state_of(tower))
    reads = bypass_weights_only(monkeypatch)
    with opened_files() as opened:
        assert find_tower_files([root], 48) == [file]
        assert sorted(find_pickles([root])) == sorted(planted)
        assert [read_tower_shape(path) for path in planted] == [None] * len(planted)
        assert read_tower_shape(root / "image_encoder") is None
    assert not marker.exists()
    assert reads == []
    assert pickles_in(opened) == []
    # The marker works: torch's loader, bypassed, runs the pickle's code.
    torch.load(planted[0])
    assert marker.exists()


def test_pickles_are_listed_once_in_a_stable_order(tmp_path):
    marker = tmp_path / "code-ran"
    root = tmp_path / "clip_vision"
    b = plant(root / "b.PTH", marker)
    a = plant(root / "a.ckpt", marker)
    link = tmp_path / "ControlNet-clip_vision"
    link.symlink_to(root, target_is_directory=True)
    (root / "notes.txt").write_text("not a model")
    assert find_pickles([root, link, tmp_path / "missing"]) == [a, b]
    assert not marker.exists()


def test_a_sharded_folder_whose_index_names_pickles_is_not_opened(tmp_path, tower):
    folder = tmp_path / "sharded"
    tower.save_pretrained(folder, safe_serialization=True, max_shard_size="200KB")
    index = folder / "model.safetensors.index.json"
    index.write_text(index.read_text().replace(".safetensors", ".bin"))
    with opened_files() as opened:
        assert read_tower_shape(folder) is None
    assert pickles_in(opened) == []


def test_missing_and_unreadable_paths(tmp_path, tower):
    assert read_tower_shape(tmp_path / "nothing.safetensors") is None
    assert find_tower_files([tmp_path / "no-such-folder"], 48) == []
    if os.name != "posix" or os.geteuid() == 0:
        return  # root reads any file; the permission case cannot be made here
    locked = save_tower(tmp_path / "locked.safetensors", state_of(tower))
    locked.chmod(0)
    try:
        assert read_tower_shape(locked) is None
    finally:
        locked.chmod(0o644)


def test_find_tower_files_offers_only_what_fits(tmp_path, tower):
    wide = tiny_tower(projection_dim=64)
    root = tmp_path / "clip_vision"
    a = save_tower(root / "a.safetensors", state_of(tower))
    save_tower(root / "B-other-width.safetensors", state_of(wide))
    save_tower(root / "c-open-clip.SAFETENSORS", to_open_clip(state_of(tower)))
    (root / "notes.txt").write_text("not a model")
    torch.save(state_of(tower), root / "d.bin")  # a pickle: listed by find_pickles, unopened
    torch.save(state_of(tower), root / "d2-legacy.pt", _use_new_zipfile_serialization=False)
    save_tower(root / "unet.safetensors", {"input_blocks.0.weight": torch.zeros(2)})
    (root / "partial.safetensors").write_bytes(a.read_bytes()[:1000])
    tower.save_pretrained(root / "image_encoder", safe_serialization=True)
    sub = save_tower(root / "sub" / "e.safetensors", state_of(tower))
    save_tower(root / "sub" / "deeper" / "f.safetensors", state_of(tower))  # two levels down

    found = find_tower_files([root], 48)
    assert found == [
        a,
        root / "c-open-clip.SAFETENSORS",
        root / "image_encoder",
        sub,
    ]
    assert find_tower_files([root], 64) == [root / "B-other-width.safetensors"]
    assert find_tower_files([root], 1280) == []


def test_symlink_loops_and_odd_names_are_skipped(tmp_path, tower):
    root = tmp_path / "clip_vision"
    file = save_tower(root / "tower.safetensors", state_of(tower))
    (root / "loop.safetensors").symlink_to(root / "loop.safetensors")
    assert find_tower_files([root], 48) == [file]
    assert source_key("bad\0name") == "bad\0name"  # not a path any file system takes
    assert source_key("./TOWER.SAFETENSORS") == str(Path("TOWER.SAFETENSORS").resolve())


def test_find_tower_files_offers_a_file_once(tmp_path, tower):
    root = tmp_path / "models" / "clip_vision"
    file = save_tower(root / "tower.safetensors", state_of(tower))
    link = tmp_path / "ControlNet-clip_vision"
    link.symlink_to(root, target_is_directory=True)
    assert find_tower_files([root, link, str(root) + "/"], 48) == [file]
    # A folder given directly that is itself a model folder is offered as such.
    tower.save_pretrained(tmp_path / "encoder", safe_serialization=True)
    assert find_tower_files([tmp_path / "encoder"], 48) == [tmp_path / "encoder"]


def test_a_rewritten_file_is_read_again(tmp_path, tower):
    path = save_tower(tmp_path / "tower.safetensors", state_of(tower))
    assert read_tower_shape(path).token_width == 48
    save_tower(path, state_of(tiny_tower(projection_dim=64)))
    assert read_tower_shape(path).token_width == 64


def test_expected_shapes_are_the_models_own(tower):
    model_shapes = {
        name: tuple(tensor.shape)
        for name, tensor in tower.state_dict().items()
        if not name.endswith("position_ids")
    }
    assert expected_shapes(tower.config) == model_shapes


@pytest.mark.parametrize(
    ("source", "repo", "subfolder"),
    [
        ("h94/IP-Adapter/models/image_encoder", "h94/IP-Adapter", "models/image_encoder"),
        (
            " h94/IP-Adapter/sdxl_models/image_encoder/ ",
            "h94/IP-Adapter",
            "sdxl_models/image_encoder",
        ),
        ("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14", ""),
        ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K\n", "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", ""),
    ],
)
def test_split_hub_source(source, repo, subfolder):
    assert split_hub_source(source) == (repo, subfolder)


def test_source_key_joins_spellings_of_one_local_path(tmp_path, monkeypatch, tower):
    file = save_tower(tmp_path / "clip_vision" / "tower.safetensors", state_of(tower))
    link = tmp_path / "link.safetensors"
    link.symlink_to(file)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    spellings = [
        str(file),
        f"  {file}  ",
        "clip_vision/tower.safetensors",
        "./clip_vision/tower.safetensors",
        "clip_vision/../clip_vision/tower.safetensors",
        "~/clip_vision/tower.safetensors",
        str(link),
        file,
    ]
    assert {source_key(spelling) for spelling in spellings} == {str(file.resolve())}
    folder_spellings = [str(file.parent), str(file.parent) + "/", "./clip_vision/", "clip_vision"]
    assert {source_key(spelling) for spelling in folder_spellings} == {str(file.parent.resolve())}


def test_source_key_keeps_hub_ids(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no local folder of that name
    assert source_key("openai/clip-vit-large-patch14") == "openai/clip-vit-large-patch14"
    assert source_key(" h94/IP-Adapter/models/image_encoder/ ") == (
        "h94/IP-Adapter/models/image_encoder"
    )
    assert source_key("h94/IP-Adapter//models/image_encoder") == (
        "h94/IP-Adapter/models/image_encoder"
    )
    assert source_key("Owner/Name") != source_key("owner/name")  # case is the hub's business
    # A missing path spelled as a path stays a path, so it fails as a missing file.
    assert source_key("./missing.safetensors") == str(tmp_path.resolve() / "missing.safetensors")


def test_default_sources():
    assert VIT_H.default_source == "h94/IP-Adapter/models/image_encoder"
    assert VIT_BIGG.default_source == "h94/IP-Adapter/sdxl_models/image_encoder"
    # The budget for a first job: 1.7 / 2.6 / 1.7 + 3.7 GB.
    assert VIT_L.download_gb <= 1.7 + 0.01
    assert VIT_H.download_gb <= 2.6
    assert VIT_BIGG.download_gb <= 3.7
    for tower in (VIT_L, VIT_H, VIT_BIGG):
        assert is_default_source(tower.default_source, tower)
        assert is_default_source(f" {tower.default_source}/ ", tower)
        assert all(is_default_source(old, tower) for old in tower.earlier_sources)
    assert is_default_source("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", VIT_H)
    assert not is_default_source("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", VIT_BIGG)
    assert not is_default_source("/models/clip_vision/tower.safetensors", VIT_H)
    assert not is_default_source("openai/clip-vit-large-patch14", VIT_B)  # no default at all


def test_known_towers_are_told_apart_by_what_they_are():
    """Each entry is one architecture with one name and one setting; widths may repeat."""
    assert len({tower.name for tower in KNOWN_TOWERS}) == len(KNOWN_TOWERS)
    assert len({tower.setting for tower in KNOWN_TOWERS}) == len(KNOWN_TOWERS)
    for tower in KNOWN_TOWERS:
        assert identify(tower.hidden_width, tower.layers) is tower
    # A second tower of ViT-L's widths (a ViT-L/14 at 336 px has them) would be its own entry:
    # identify tells them apart by depth, and the paired tower keeps its own default.
    assert identify(1024, 24) is VIT_L
    assert identify(1024, 2) is VIT_L  # another depth of a known width: that width's heads
    assert identify(96, 2) is None
