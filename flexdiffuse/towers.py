"""Which CLIP vision towers a source names, and which tower files are already on disk.

Image-prompt tools leave vision towers in well-known folders (A1111/Forge ``models/clip_vision``,
the ControlNet extension's ``clip_vision`` downloads, ComfyUI's ``models/clip_vision``). This
module tells which of those files fit a tower by reading only tensor names and shapes: the
header of a ``.safetensors`` file (``safetensors.safe_open``), and for a folder saved by
transformers its ``config.json`` and the headers of its safetensors weights. No weights are
read. A pickle found there (``.pth``, ``.pt``, ``.bin``, ``.ckpt``, such as the ControlNet
extension's ``clip_h.pth``) is listed (:func:`find_pickles`) but never opened: unpickling can
run code, and torch's ``weights_only`` loader has had published bypasses (see
:mod:`~flexdiffuse.checkpoints`). It also gives each source one key (:func:`source_key`), so
that different spellings of one local path name one tower, and tells a known tower's default
sources (:func:`is_default_source`); the towers themselves are in
:mod:`~flexdiffuse.known_towers`. Nothing here imports the webui.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoints import (
    PICKLE_SUFFIXES,
    VISION,
    CheckpointError,
    expected_shapes,
    vision_config,
    vision_state_dict,
)
from .known_towers import KnownTower

logger = logging.getLogger(__name__)

SAFETENSORS_SUFFIX = ".safetensors"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class TowerShape:
    """The sizes of a CLIP vision tower, read from its tensor shapes.

    ``token_width`` is the width of its image tokens (768 for ViT-L/14, 1024 for OpenCLIP
    ViT-H/14, 1280 for OpenCLIP ViT-bigG/14): the number that must match the text space of the
    checkpoint part being guided.
    """

    hidden_width: int
    token_width: int
    layers: int
    image_size: int


def is_default_source(source: str, tower: KnownTower) -> bool:
    """Whether ``source`` is ``tower``'s default, today's or an earlier one.

    A setting that still names a default may be replaced by a fitting file found on disk.
    """
    defaults = (tower.default_source, *tower.earlier_sources) if tower.default_source else ()
    return source_key(source) in {source_key(name) for name in defaults}


def is_local_source(source: str) -> bool:
    """Whether ``source`` names a local file or folder rather than a Hugging Face id.

    An existing path is local; so is anything spelled like a path (absolute, ``~``, ``./``,
    a drive letter, or a weights file suffix), which then fails as a missing path rather
    than as an unknown model id.
    """
    name = source.strip()
    if not name:
        return False
    path = Path(name).expanduser()
    try:
        if path.exists():
            return True
    except (OSError, ValueError):  # a name no file system accepts (too long, NUL)
        return False
    return (
        name.startswith(("/", "~", ".", "\\"))
        or bool(Path(name).drive)
        or path.suffix.lower() in (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)
    )


def split_hub_source(source: str) -> tuple[str, str]:
    """The Hugging Face repo id and subfolder a hub source names.

    ``"h94/IP-Adapter/models/image_encoder"`` is the folder ``models/image_encoder`` of the
    repo ``h94/IP-Adapter``: the repo id is the first two path components, the subfolder the
    rest (empty for a whole-repo id such as ``"openai/clip-vit-large-patch14"``).
    """
    parts = [part for part in _normalise_hub_id(source).split("/") if part]
    return "/".join(parts[:2]), "/".join(parts[2:])


def source_key(source: str | os.PathLike[str]) -> str:
    """One key per source, whatever its spelling.

    Local paths resolve (``~``, ``./``, ``..``, trailing slashes and symlinks all lead to one
    file or folder); Hugging Face ids keep their case and lose stray whitespace and slashes.
    """
    name = os.fspath(source).strip()
    if is_local_source(name):
        return str(Path(name).expanduser().resolve())
    return _normalise_hub_id(name)


def read_tower_shape(path: str | os.PathLike[str]) -> TowerShape | None:
    """The shape of the CLIP vision tower in ``path``, or None if it holds none we can use.

    ``path`` is a ``.safetensors`` file in transformers' ``vision_model.*`` layout (a whole
    ``CLIPModel`` included) or OpenCLIP's ``visual.*``, or a folder saved by transformers
    (``config.json`` and ``model.safetensors``, sharded or not). Only safetensors headers and
    the folder's ``config.json`` are read, never weights. A pickle gives None unopened;
    truncated or corrupt files, non-CLIP weights and towers without a visual projection give
    None too (the reason is logged at debug level).
    """
    target = Path(path)
    try:
        if target.is_dir():
            shapes = _folder_shapes(target)
        elif target.suffix.lower() == SAFETENSORS_SUFFIX:
            shapes = _cached_header_shapes(*_file_identity(target))
        elif _is_pickle(target):
            logger.debug("Not opened (a pickle, whose loading can run code): %s", target)
            return None
        else:
            logger.debug("Not scanned (not a weights file or a model folder): %s", target)
            return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        logger.debug("Skipped unreadable %s: %s", target, error)
        return None
    if shapes is None:
        return None
    shape = _shape_of(shapes, target)
    if shape is not None and target.is_dir() and not _config_agrees(target, shape):
        return None
    return shape


def find_tower_files(folders: Iterable[str | os.PathLike[str]], token_width: int) -> list[Path]:
    """Tower files and model folders in ``folders`` whose image tokens are ``token_width`` wide.

    The token width is what guiding a conditioning part needs of a tower: a file fits the
    part whose channels it matches, whichever tower of that width it holds.

    Each folder is scanned with one level of subfolders: its ``.safetensors`` files, and each
    subfolder either as a model folder (``config.json`` + ``model.safetensors``, offered as a
    folder) or for the ``.safetensors`` files directly in it. Missing folders are skipped;
    the same file reached twice (two folders, a symlink) is offered once. Pickles are not
    opened (:func:`find_pickles` lists them).
    """
    found: list[Path] = []
    for candidate in _unique(_candidates(Path(folder).expanduser()) for folder in folders):
        if _is_pickle(candidate):
            continue
        shape = read_tower_shape(candidate)
        if shape is not None and shape.token_width == token_width:
            found.append(candidate)
    return found


def find_pickles(folders: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The pickles where :func:`find_tower_files` looks: listed by name, never opened.

    ``.pth``, ``.pt``, ``.bin`` and ``.ckpt`` files in each folder and one level down (the
    ``pytorch_model.bin`` of a folder saved by transformers without safetensors too), each
    once. Whether one holds a tower cannot be told without unpickling it.
    """
    return [
        candidate
        for candidate in _unique(_candidates(Path(folder).expanduser()) for folder in folders)
        if _is_pickle(candidate)
    ]


def _unique(groups: Iterable[list[Path]]) -> list[Path]:
    """The paths of ``groups`` in order, each file or folder once whatever leads to it."""
    unique: list[Path] = []
    seen: set[str] = set()
    for group in groups:
        for path in group:
            try:
                key = str(path.resolve())
            except (OSError, RuntimeError) as error:  # a symlink loop
                logger.debug("Skipped %s: %s", path, error)
                continue
            if key not in seen:
                seen.add(key)
                unique.append(path)
    return unique


def _normalise_hub_id(source: str) -> str:
    name = re.sub(r"\s+", "", source)  # hub ids hold no whitespace
    return re.sub(r"/+", "/", name).strip("/")


def _candidates(folder: Path) -> list[Path]:
    """The weights files and model folders in ``folder``, pickles included, in a stable order."""
    if not folder.is_dir():
        logger.debug("Tower folder not found: %s", folder)
        return []
    if _is_model_folder(folder):
        return [folder]
    found: list[Path] = []
    for entry in _sorted_entries(folder):
        if entry.is_dir():
            found.extend([entry] if _is_model_folder(entry) else _weights_files(entry))
        elif _is_weights_file(entry):
            found.append(entry)
    return found


def _weights_files(folder: Path) -> list[Path]:
    return [entry for entry in _sorted_entries(folder) if _is_weights_file(entry)]


def _sorted_entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir(), key=lambda entry: entry.name.lower())
    except OSError as error:
        logger.debug("Cannot list %s: %s", folder, error)
        return []


def _is_weights_file(entry: Path) -> bool:
    suffix = entry.suffix.lower()
    return (suffix == SAFETENSORS_SUFFIX or suffix in PICKLE_SUFFIXES) and entry.is_file()


def _is_pickle(path: Path) -> bool:
    return path.suffix.lower() in PICKLE_SUFFIXES and not path.is_dir()


def _is_model_folder(folder: Path) -> bool:
    """A folder as ``save_pretrained`` writes it, with safetensors weights."""
    weights = (folder / WEIGHTS_FILE).is_file() or (folder / WEIGHTS_INDEX).is_file()
    return weights and (folder / CONFIG_FILE).is_file()


def _folder_shapes(folder: Path) -> dict[str, tuple[int, ...]] | None:
    if not _is_model_folder(folder):
        logger.debug("Not a model folder (needs config.json and model.safetensors): %s", folder)
        return None
    if (folder / WEIGHTS_FILE).is_file():
        return _cached_header_shapes(*_file_identity(folder / WEIGHTS_FILE))
    index = json.loads((folder / WEIGHTS_INDEX).read_text(encoding="utf-8"))
    shards = sorted(set(index["weight_map"].values()))
    if not all(shard.endswith(SAFETENSORS_SUFFIX) for shard in shards):
        logger.debug("Not opened (its index names other files than safetensors): %s", folder)
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for shard in shards:
        part = _cached_header_shapes(*_file_identity(folder / shard))
        if part is None:
            return None
        shapes.update(part)
    return shapes


def _config_agrees(folder: Path, shape: TowerShape) -> bool:
    """Whether the folder's config.json describes the tower its weights hold.

    ``from_pretrained`` builds the model from the config, so a config that disagrees with the
    weights would fail to load: such a folder is not offered.
    """
    from transformers import CLIPVisionConfig

    try:
        # Reads the vision part of a whole CLIPModel config too, as loading does.
        config = CLIPVisionConfig.from_pretrained(folder)
    except (OSError, ValueError) as error:
        logger.debug("Unreadable config.json in %s: %s", folder, error)
        return False
    declared = (config.hidden_size, config.projection_dim, config.num_hidden_layers)
    if declared != (shape.hidden_width, shape.token_width, shape.layers):
        logger.debug("The config.json of %s does not describe its weights", folder)
        return False
    return True


def _file_identity(file: Path) -> tuple[str, int, int]:
    """A cache key that changes when the file is replaced or rewritten."""
    stat = file.stat()
    return str(file.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=256)
def _cached_header_shapes(file: str, size: int, mtime_ns: int) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a safetensors file, from its header alone.

    ``safe_open`` maps the file and checks that its header covers exactly the bytes it holds,
    so a half-downloaded file (the header whole, the data short) is refused as loading would
    refuse it; ``get_slice`` gives a tensor's shape without reading it.
    """
    del size, mtime_ns  # part of the cache key only
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(file, framework="pt") as weights:
            return {name: tuple(weights.get_slice(name).get_shape()) for name in weights.keys()}  # noqa: SIM118
    except SafetensorError as error:  # a truncated or corrupt file
        raise ValueError(str(error)) from error


def _shape_of(shapes: Mapping[str, tuple[int, ...]], target: Path) -> TowerShape | None:
    """The tower in ``shapes``, by the same key conventions and checks as loading it."""
    # Meta tensors carry shapes without storage, so the loader's own renaming (OpenCLIP's
    # fused q/k/v, its transposed projection) and checks run without any weights.
    meta = {name: torch.empty(shape, device="meta") for name, shape in shapes.items()}
    try:
        state = vision_state_dict(meta)
        config = vision_config(state)
    except (CheckpointError, ValueError, IndexError, RuntimeError) as error:
        logger.debug("Not a CLIP vision tower FlexDiffuse can use: %s (%s)", target, error)
        return None
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    found.pop(f"{VISION}embeddings.position_ids", None)  # a buffer older files still carry
    if found != expected_shapes(config):
        logger.debug("The tensors of %s do not fit a tower of their own sizes", target)
        return None
    return TowerShape(
        hidden_width=int(config.hidden_size),
        token_width=int(config.projection_dim),
        layers=int(config.num_hidden_layers),
        image_size=int(config.image_size),
    )
