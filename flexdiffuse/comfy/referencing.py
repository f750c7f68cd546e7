"""Saved references in ComfyUI: encode images once, save them by name, load them back.

A reference travels between nodes as the ``FLEXDIFFUSE_REFERENCE`` type (a core
:class:`~flexdiffuse.references.Reference`) and sits in any image slot of the guidance and
preview nodes, whose image sockets take an IMAGE or a reference. Files live in the folder
ComfyUI knows as ``flexdiffuse_references`` (``models/FlexDiffuse/references`` unless
extra_model_paths.yaml adds others) and are read with safetensors only
(:func:`~flexdiffuse.references.load_reference`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import folder_paths
import numpy as np
import torch
from comfy_api.v0_0_2 import io
from PIL import Image

from ..recipes import recipe_key
from ..references import (
    REFERENCES_SUBFOLDER,
    THUMBNAIL_SIDE,
    Reference,
    ReferenceImage,
    TowerIdentity,
    image_digest,
    list_references,
    reference_path,
    thumbnail,
)
from .guiding import (
    GuideError,
    Steps,
    WeightedImages,
    check_images,
    identify_tower,
    image_tokens,
    mask_keep,
    picture_masks,
)

REFERENCE = io.Custom("FLEXDIFFUSE_REFERENCE")
"""The reference type between nodes: a :class:`~flexdiffuse.references.Reference`."""

FOLDER = "flexdiffuse_references"
"""The folder_paths name of the references' folders."""


def register_folder() -> None:
    """Register ``models/FlexDiffuse/references`` as ComfyUI's ``flexdiffuse_references``
    folder, first among any extra_model_paths.yaml gives (where new references are saved)."""
    default = os.path.join(folder_paths.models_dir, *REFERENCES_SUBFOLDER.split("/"))
    folder_paths.add_model_folder_path(FOLDER, default, is_default=True)


def saved_names() -> list[str]:
    """The names of the saved references in every references folder, sorted."""
    register_folder()
    names: set[str] = set()
    for folder in folder_paths.get_folder_paths(FOLDER):
        if os.path.isdir(folder):
            names.update(list_references(Path(folder)))
    return sorted(names)


def saved_path(name: str) -> Path:
    """The file of the saved reference ``name``.

    Raises:
        GuideError: no references folder has it.
    """
    register_folder()
    for folder in folder_paths.get_folder_paths(FOLDER):
        path = reference_path(Path(folder), name)
        if path.is_file():
            return path
    raise GuideError(
        f"There is no saved reference '{name}' in {save_folder()}: save it with FlexDiffuse "
        "Save Reference, then refresh the page (R) to list it."
    )


def save_folder() -> Path:
    """Where new references are saved: the first references folder."""
    register_folder()
    return Path(folder_paths.get_folder_paths(FOLDER)[0])


def to_picture(pixels: torch.Tensor) -> Image.Image:
    """One ComfyUI picture ``[H, W, C]`` in 0..1 as an 8-bit RGB image."""
    array = (pixels[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


def thumbnail_tiles(reference: Reference) -> list[Image.Image]:
    """Each image's square of the reference's thumbnail (laid out as
    :func:`~flexdiffuse.references.thumbnail` lays them: rows of ``ceil(sqrt(n))``)."""
    sheet = Image.fromarray(reference.thumbnail.cpu().numpy(), "RGB")
    columns = max(1, sheet.width // THUMBNAIL_SIDE)
    side = THUMBNAIL_SIDE
    tiles = []
    for index in range(len(reference.images)):
        left, top = (index % columns) * side, (index // columns) * side
        tiles.append(sheet.crop((left, top, left + side, top + side)))
    return tiles


def thumbnail_image(reference: Reference) -> torch.Tensor:
    """The reference's thumbnail as a ComfyUI IMAGE ``[1, h, w, 3]``."""
    return (reference.thumbnail.float() / 255.0).unsqueeze(0)


def encode_reference(
    pixels: torch.Tensor,
    towers: Sequence[Any],
    recipe: str,
    mask: torch.Tensor | None = None,
    add_to: Reference | None = None,
    steps: Steps | None = None,
) -> Reference:
    """A reference of an IMAGE's pictures: each picture's tokens from every connected tower,
    its digest, ``recipe`` and its mask's token keep; after ``add_to``'s images if given.

    Raises:
        GuideError: no IMAGE, a bad mask, two towers of one kind, or ``add_to`` made with
            other towers.
    """
    check_images(pixels, "images")
    slot = WeightedImages(pixels, 1.0, recipe_key(recipe), mask, "images")
    masks = picture_masks(slot)
    known = [identify_tower(tower, number) for number, tower in enumerate(towers, 1)]
    labels = [tower.known.label for tower in known]
    if len(set(labels)) != len(labels):
        raise GuideError(
            f"Both CLIP vision models are {labels[0]}: connect each kind once (SDXL: "
            "ViT-L/14 to clip_vision, ViT-bigG/14 to clip_vision_2)."
        )
    identities = tuple(
        TowerIdentity.of(t.known, f"ComfyUI CLIP_VISION {t.identity}") for t in known
    )
    if add_to is not None and {t.name for t in add_to.towers} != {t.name for t in identities}:
        made = " and ".join(t.label for t in add_to.towers)
        raise GuideError(
            f"The reference to add to was encoded with {made}, these images with "
            f"{' and '.join(labels)}: connect the same CLIP vision models as it was made with."
        )
    steps = steps or Steps()
    encoded = {}
    for tower in known:
        steps.check_interrupt()
        encoded[tower.known.name] = image_tokens(tower, pixels)
        steps.advance()
    pictures = [to_picture(picture) for picture in pixels]
    images = []
    for number, picture in enumerate(pictures):
        tokens = {name: per_picture[number] for name, per_picture in encoded.items()}
        count = len(next(iter(tokens.values())))
        keep = mask_keep(slot, masks[number], pixels[number], count)
        images.append(ReferenceImage(image_digest(picture), tokens, slot.recipe, keep))
    if add_to is None:
        return Reference("", tuple(images), identities, thumbnail(pictures))
    return Reference(
        add_to.name,
        (*add_to.images, *images),
        add_to.towers,
        thumbnail([*thumbnail_tiles(add_to), *pictures]),
    )


def named(reference: Reference, name: str) -> Reference:
    """``reference`` under ``name``."""
    return dataclasses.replace(reference, name=name)
