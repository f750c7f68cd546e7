"""Saved references: guidance images encoded once, kept as one safetensors file, reused.

A reference holds, for each of its images, the image tokens of every tower that encoded it
(exactly as encoded, so a job from the reference gives the pixels of the same job from the
images), the image's digest, its recipe (docs/algorithm.md §17) and its mask's token keep
(§18), with a small thumbnail of the images and the identity of each tower. The file is read
with safetensors alone, never unpickled; a file that is not a reference says what it is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .images import centre_square, image_digest
from .known_towers import KnownTower
from .params import JOB_RECIPE
from .recipes import ImageTokens, recipe_key

__all__ = [
    "REFERENCES_SUBFOLDER",
    "Reference",
    "ReferenceError",
    "ReferenceImage",
    "TowerIdentity",
    "image_digest",
    "list_references",
    "load_reference",
    "reference_hash",
    "reference_images",
    "reference_path",
    "save_reference",
    "thumbnail",
    "thumbnail_squares",
]

logger = logging.getLogger(__name__)

FORMAT = "flexdiffuse.reference"
"""The ``format`` entry of a reference file's metadata: what tells a reference from any other
safetensors file."""
VERSION = 1
SUFFIX = ".safetensors"
THUMBNAIL_SIDE = 64
"""Side of each image's square in the thumbnail, in pixels."""
REFERENCES_SUBFOLDER = "FlexDiffuse/references"
"""Where references are saved, under the host's models folder."""
_NAME = re.compile(r"^[\w][\w .()+,-]*$")


class ReferenceError(ValueError):
    """A reference that cannot be saved, read or used; the message says what to do."""


@dataclass(frozen=True)
class TowerIdentity:
    """The tower that encoded a reference: the known tower it is (``vit_l``…), as users know
    it, its token width and where its weights came from (informational)."""

    name: str
    label: str
    token_width: int
    source: str = ""

    @classmethod
    def of(cls, tower: KnownTower, source: str = "") -> TowerIdentity:
        """The identity of known ``tower`` loaded from ``source``."""
        return cls(tower.name, tower.label, tower.token_width, source)


@dataclass(frozen=True, eq=False)
class ReferenceImage:
    """One image of a reference: its tokens ``[n, d]`` per tower name, its digest, recipe and
    token keep ``[n]`` (None: no mask)."""

    digest: str
    tokens: dict[str, torch.Tensor]
    recipe: str = JOB_RECIPE
    keep: torch.Tensor | None = None


@dataclass(frozen=True, eq=False)
class Reference:
    """A named reference: its images, the towers that encoded them, a thumbnail ``[h, w, 3]``
    (uint8)."""

    name: str
    images: tuple[ReferenceImage, ...]
    towers: tuple[TowerIdentity, ...]
    thumbnail: torch.Tensor = field(default_factory=lambda: torch.zeros(1, 1, 3, dtype=torch.uint8))

    def tokens(self, tower: KnownTower) -> list[torch.Tensor]:
        """Each image's tokens from ``tower``.

        Raises:
            ReferenceError: the reference was made without that tower.
        """
        if all(identity.name != tower.name for identity in self.towers):
            made = " and ".join(identity.label for identity in self.towers)
            raise ReferenceError(
                f"The reference '{self.name}' was made with {made}, but this checkpoint needs "
                f"{tower.label} too: save the reference again from its images with this "
                "checkpoint loaded (or with its tower), or use the images themselves."
            )
        return [image.tokens[tower.name] for image in self.images]


def reference_images(
    reference: Reference, tower: KnownTower, weight: float, slot_recipe: str = JOB_RECIPE
) -> list[ImageTokens]:
    """A reference in an image slot: its images' ``tower`` tokens, each with the slot's
    ``weight``, the slot's recipe (the one saved with the image where the slot's is the job's
    settings) and the saved mask's keep.

    Raises:
        ReferenceError: the reference was made without ``tower``.
    """
    slot = recipe_key(slot_recipe)
    return [
        ImageTokens(tokens, weight, image.recipe if slot == JOB_RECIPE else slot, image.keep)
        for image, tokens in zip(reference.images, reference.tokens(tower), strict=True)
    ]


def thumbnail_squares(reference: Reference) -> list[Image.Image]:
    """Each image of ``reference`` as its thumbnail shows it: its square of the grid that
    :func:`thumbnail` lays out (the pictures a host shows for a reference, which keeps none)."""
    sheet = Image.fromarray(reference.thumbnail.cpu().numpy(), "RGB")
    side = THUMBNAIL_SIDE
    columns = max(1, sheet.width // side)
    boxes = [((n % columns) * side, (n // columns) * side) for n in range(len(reference.images))]
    return [sheet.crop((left, top, left + side, top + side)) for left, top in boxes]


def reference_path(folder: Path, name: str) -> Path:
    """The file of the reference named ``name`` in ``folder``.

    Raises:
        ReferenceError: a name that is empty, a path or has characters a file name cannot.
    """
    text = name.strip() if isinstance(name, str) else ""
    if text.lower().endswith(SUFFIX):
        text = text[: -len(SUFFIX)]
    if not _NAME.match(text) or len(text) > 120:
        raise ReferenceError(
            f"{name!r} is not a reference name: use letters, digits, spaces and . ( ) + , - _ "
            "(at most 120), starting with a letter or digit."
        )
    return Path(folder) / f"{text}{SUFFIX}"


def list_references(folder: Path) -> list[str]:
    """The names of the references saved in ``folder``, sorted (a missing folder: none).

    Only each file's safetensors header is read: nothing is unpickled and no tensor loaded;
    safetensors files that are not references are left out.
    """
    names = []
    for path in sorted(Path(folder).glob(f"*{SUFFIX}")) if Path(folder).is_dir() else []:
        try:
            with safe_open(str(path), framework="pt") as reader:
                if (reader.metadata() or {}).get("format") == FORMAT:
                    names.append(path.name[: -len(SUFFIX)])
        except (SafetensorError, OSError) as error:
            logger.warning("Skipping %s, which cannot be read as a reference: %s", path, error)
    return names


def thumbnail(images: Sequence[Image.Image]) -> torch.Tensor:
    """A small picture of ``images``: their centre squares in a grid, ``[h, w, 3]`` uint8."""
    if not images:
        raise ReferenceError("A reference needs at least one image.")
    columns = math.ceil(math.sqrt(len(images)))
    rows = math.ceil(len(images) / columns)
    side = THUMBNAIL_SIDE
    sheet = Image.new("RGB", (columns * side, rows * side), (255, 255, 255))
    for index, image in enumerate(images):
        square = centre_square(image).resize((side, side), Image.Resampling.BICUBIC)
        sheet.paste(square, ((index % columns) * side, (index // columns) * side))
    return torch.from_numpy(np.asarray(sheet).copy())


def save_reference(reference: Reference, path: Path) -> Path:
    """Write ``reference`` to ``path`` (a ``.safetensors`` file), replacing it atomically.

    Raises:
        ReferenceError: an empty reference, or images whose towers or masks do not fit.
    """
    _check(reference)
    tensors: dict[str, torch.Tensor] = {"thumbnail": reference.thumbnail.contiguous()}
    images = []
    for number, image in enumerate(reference.images):
        for tower, tokens in image.tokens.items():
            tensors[f"image.{number}.tokens.{tower}"] = tokens.detach().cpu().contiguous()
        if image.keep is not None:
            tensors[f"image.{number}.keep"] = image.keep.detach().cpu().to(torch.bool)
        images.append({"digest": image.digest, "recipe": image.recipe})
    header = {
        "name": reference.name,
        "towers": [vars(tower) for tower in reference.towers],
        "images": images,
    }
    metadata = {"format": FORMAT, "version": str(VERSION), "reference": json.dumps(header)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    save_file(tensors, str(partial), metadata=metadata)
    os.replace(partial, path)
    logger.info("Saved the reference '%s' (%d images) to %s", reference.name, len(images), path)
    return path


def load_reference(path: Path) -> Reference:
    """The reference in ``path``, read with safetensors only.

    Raises:
        ReferenceError: a missing, truncated or corrupt file, a safetensors file that is no
            reference, or one made by a newer FlexDiffuse.
    """
    path = Path(path)
    if not path.is_file():
        raise ReferenceError(f"There is no reference file {path}: save the reference first.")
    try:
        with safe_open(str(path), framework="pt") as reader:
            metadata = reader.metadata() or {}
            header = _header(path, metadata)
            tensors = {key: reader.get_tensor(key) for key in reader.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ReferenceError(
            f"{path.name} cannot be read as a safetensors file ({error}): it is truncated or "
            "corrupt. Save the reference again from its images."
        ) from error
    return _reference(path, header, tensors)


def reference_hash(path: Path) -> str:
    """The first 10 hex digits of the file's sha256, as the webuis show model hashes."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:10]


def _header(path: Path, metadata: dict[str, str]) -> dict[str, Any]:
    if metadata.get("format") != FORMAT:
        raise ReferenceError(
            f"{path.name} is a safetensors file but not a FlexDiffuse reference (model weights, "
            "say): pick a file saved as a FlexDiffuse reference."
        )
    if not metadata.get("version", "").isdigit() or int(metadata["version"]) > VERSION:
        raise ReferenceError(
            f"{path.name} is a reference of format version {metadata.get('version')!r}, newer "
            f"than this FlexDiffuse reads ({VERSION}): update FlexDiffuse."
        )
    try:
        header = json.loads(metadata["reference"])
        return {"name": str(header["name"]), "towers": header["towers"], "images": header["images"]}
    except (KeyError, TypeError, ValueError) as error:
        raise _corrupt(path, "its description") from error


def _reference(path: Path, header: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Reference:
    try:
        towers = tuple(TowerIdentity(**tower) for tower in header["towers"])
        images = tuple(
            ReferenceImage(
                str(image["digest"]),
                {t.name: tensors[f"image.{n}.tokens.{t.name}"] for t in towers},
                str(image.get("recipe", JOB_RECIPE)),
                tensors.get(f"image.{n}.keep"),
            )
            for n, image in enumerate(header["images"])
        )
        reference = Reference(header["name"], images, towers, tensors["thumbnail"])
        _check(reference)
    except (KeyError, TypeError, ReferenceError) as error:
        raise _corrupt(path, "its tensors") from error
    return reference


def _corrupt(path: Path, part: str) -> ReferenceError:
    return ReferenceError(
        f"{path.name} is a FlexDiffuse reference whose {part} are incomplete or corrupt: save "
        "the reference again from its images."
    )


def _check(reference: Reference) -> None:
    if not reference.images or not reference.towers:
        raise ReferenceError("A reference needs at least one image encoded by one tower.")
    for image in reference.images:
        for tower in reference.towers:
            tokens = image.tokens.get(tower.name)
            if tokens is None or tokens.ndim != 2 or tokens.shape[1] != tower.token_width:
                raise ReferenceError(
                    f"Every image of a reference needs its {tower.label} tokens "
                    f"[n, {tower.token_width}]."
                )
            if image.keep is not None and tuple(image.keep.shape) != (tokens.shape[0],):
                raise ReferenceError("A reference image's mask must keep or drop each token.")
