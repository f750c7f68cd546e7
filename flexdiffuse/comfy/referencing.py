"""References from ComfyUI's objects: IMAGE pictures and CLIP_VISION towers encoded once.

A reference travels between nodes as the ``FLEXDIFFUSE_REFERENCE`` type (a core
:class:`~flexdiffuse.references.Reference`) and sits in any image slot of the guidance and
preview nodes, whose image sockets take an IMAGE or a reference. Like ``guiding.py`` this
module reads ComfyUI's objects by duck typing; the nodes and the references folder are
``reference_nodes.py``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..recipes import recipe_key
from ..references import (
    Reference,
    ReferenceImage,
    TowerIdentity,
    image_digest,
    thumbnail,
    thumbnail_squares,
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

UNSAVED = "Encode Reference"
"""The name of a reference not saved yet (messages name the reference)."""


def to_picture(pixels: torch.Tensor) -> Image.Image:
    """One ComfyUI picture ``[H, W, C]`` in 0..1 as an 8-bit RGB image."""
    array = (pixels[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    return Image.fromarray(np.ascontiguousarray(array), "RGB")


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
        return Reference(UNSAVED, tuple(images), identities, thumbnail(pictures))
    return Reference(
        add_to.name,
        (*add_to.images, *images),
        add_to.towers,
        thumbnail([*thumbnail_squares(add_to), *pictures]),
    )


def named(reference: Reference, name: str) -> Reference:
    """``reference`` under ``name``."""
    return dataclasses.replace(reference, name=name)
