"""Saved references in the webui: ``models/FlexDiffuse/references``, named by image slot.

A guidance image slot may name a saved reference (the core's :mod:`flexdiffuse.references`)
instead of holding an image: the job then guides with the tokens saved in it and loads no
vision tower for it. This module reads the names a job gives (panel, API, X/Y/Z) into
references, records them in the infotext by name and file hash, says on paste whether a
reference is missing or changed, turns a reference into the slot's image tokens, and saves the
panel's images (or an API request's) as a reference, encoded as a job would encode them. The
panel's controls are in ``reference_panel.py``; nothing here imports gradio or the webui.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from fastapi import Body, FastAPI, HTTPException

from ..images import GuidanceImage
from ..known_towers import KnownTower
from ..params import INFOTEXT_PREFIX, JOB_RECIPE, JobParams
from ..references import (
    REFERENCES_SUBFOLDER,
    Reference,
    ReferenceError,
    ReferenceImage,
    TowerIdentity,
    list_references,
    load_reference,
    reference_hash,
    reference_path,
    save_reference,
    thumbnail,
    thumbnail_squares,
)
from . import settings
from .args import (
    GUIDANCE_INPUTS,
    NO_REFERENCE,
    REFERENCE_INPUTS,
    ScriptArgs,
    SlotReference,
    describe_input,
    parse_script_args,
    read_reference_name,
)
from .conds import token_states
from .errors import FlexDiffuseError
from .families import detect_family
from .hosts import Host
from .infotext import is_flexdiffuse_infotext
from .prepare import encode_images, guided_parts, mask_keep, tower_placement
from .runtime import Runtime

logger = logging.getLogger(__name__)

ROUTE = "/flexdiffuse/v1/references"
"""The API route that lists (GET) and saves (POST) references."""

HASH_SUFFIX = " hash"


def references_folder(host: Host) -> Path:
    """Where the webui keeps saved references: ``models/FlexDiffuse/references``."""
    return host.models_dir() / REFERENCES_SUBFOLDER


def reference_names(host: Host) -> list[str]:
    """The saved references' names, for the menus and the X/Y/Z axis."""
    return list_references(references_folder(host))


def reference_key(slot: str) -> str:
    """Infotext key of the reference of ``slot`` ("FlexDiffuse image 2 reference")."""
    return f"{INFOTEXT_PREFIX} {REFERENCE_INPUTS[slot].replace('_', ' ')}"


def read_references(args: ScriptArgs, host: Host, plotted: Mapping[str, Any]) -> ScriptArgs:
    """``args`` with every slot's reference read from its file; ``plotted`` are the X/Y/Z
    cell's values by argument name, whose references replace the panel's.

    Raises:
        FlexDiffuseError: a reference that is missing or cannot be read (what to do).
    """
    names = {slot: ref.name for slot, ref in args.references.items()}
    for slot, argument in REFERENCE_INPUTS.items():
        if argument in plotted:
            name = read_reference_name(plotted[argument], slot)
            if name is None:
                names.pop(slot, None)
            else:
                names[slot] = name
    folder = references_folder(host)
    return replace(args, references={slot: load_named(folder, n) for slot, n in names.items()})


def load_named(folder: Path, name: str) -> SlotReference:
    """The reference saved as ``name`` in ``folder``, with its file's hash.

    Raises:
        FlexDiffuseError: no such reference, a bad name, or a file that cannot be read.
    """
    try:
        path = reference_path(folder, name)
        if not path.is_file():
            raise FlexDiffuseError(
                f"There is no saved reference '{name}' in {folder}. Pick one from the menu "
                "(its refresh button reads the folder again) or save it first."
            )
        return SlotReference(name, reference_hash(path), load_reference(path))
    except ReferenceError as error:
        raise FlexDiffuseError(str(error)) from None


def reference_entries(args: ScriptArgs) -> dict[str, str]:
    """The infotext entries of the job's references: each one's name and file hash."""
    entries = {}
    for slot, ref in args.references.items():
        entries[reference_key(slot)] = ref.name
        entries[reference_key(slot) + HASH_SUFFIX] = ref.hash
    return entries


def guidance_pictures(args: ScriptArgs) -> list[GuidanceImage]:
    """A picture of each image that guides, in the order of their tokens: a slot's image, or
    each image of its reference as its thumbnail shows it (for the mapping preview)."""
    pictures = []
    for slot in args.guidance_slots():
        ref = args.references.get(slot)
        if ref is None:
            pictures.append(args.images[slot])
            continue
        assert ref.reference is not None
        squares = thumbnail_squares(ref.reference)
        pictures += [
            GuidanceImage(square, image.digest)
            for square, image in zip(squares, ref.reference.images, strict=True)
        ]
    return pictures


# ------------------------------------------------------------------------------------ paste


@functools.cache
def paste_reader(slot: str) -> Callable[[Mapping[str, Any]], str | None]:
    """The reader of the reference menu of ``slot`` for pasted parameters: the name
    recorded (kept even when missing here, so the job says so), or none."""

    def read(infotext: Mapping[str, Any]) -> str | None:
        if not is_flexdiffuse_infotext(infotext):
            return None
        name = read_reference_name(str(infotext.get(reference_key(slot), "")), slot)
        return name or NO_REFERENCE

    read.__name__ = f"read_{REFERENCE_INPUTS[slot]}"
    return read


@functools.cache
def paste_note(host: Host) -> Callable[[Mapping[str, Any]], str | None]:
    """The reader of the panel's reference note: what a pasted job's references are here
    (missing, or saved again since the image was made), or nothing. One per host: "Send to"
    pairs the two tabs' fields by their reader."""

    def read(infotext: Mapping[str, Any]) -> str | None:
        if not is_flexdiffuse_infotext(infotext):
            return None
        notes = (_pasted_reference_note(host, infotext, slot) for slot in GUIDANCE_INPUTS)
        return " ".join(note for note in notes if note)

    read.__name__ = "read_reference_note"
    return read


def _pasted_reference_note(host: Host, infotext: Mapping[str, Any], slot: str) -> str:
    name = read_reference_name(str(infotext.get(reference_key(slot), "")), slot)
    if name is None:
        return ""
    recorded = str(infotext.get(reference_key(slot) + HASH_SUFFIX, ""))
    folder = references_folder(host)
    label = f"The pasted {describe_input(slot)} used the saved reference '{name}'"
    try:
        path = reference_path(folder, name)
    except ReferenceError as error:
        return f"**{label}, which cannot be a reference here: {error}**"
    if not path.is_file():
        return (
            f"**{label} (hash {recorded}), which is not in {folder}: copy it there or save it "
            "again from its images, or pick another.**"
        )
    now = reference_hash(path)
    if recorded and now != recorded:
        return (
            f"**{label} (hash {recorded}), which has been saved again since (hash {now}): "
            "the image will differ.**"
        )
    return ""


# ----------------------------------------------------------------------------------- saving


def save_from_args(runtime: Runtime, name: str, args: ScriptArgs, overwrite: bool) -> str:
    """Encode the guidance images of ``args`` with the loaded checkpoint's towers, as a job
    would, and save them with their references' images as reference ``name``; returns
    what was saved, in words.

    Raises:
        FlexDiffuseError: a bad or taken name (without ``overwrite``), no image, no
            checkpoint, or a tower that cannot be loaded.
    """
    host = runtime.host
    folder = references_folder(host)
    if name.strip() == NO_REFERENCE:
        raise FlexDiffuseError(
            f"'{NO_REFERENCE}' means no reference in the menus: choose another name."
        )
    try:
        path = reference_path(folder, name)
    except ReferenceError as error:
        raise FlexDiffuseError(str(error)) from None
    if path.exists() and not overwrite:
        raise FlexDiffuseError(
            f"A reference named '{name}' exists already: tick Overwrite (API: "
            '"overwrite": true) to replace it, or choose another name.'
        )
    args = read_references(args, host, {})
    slots = args.guidance_slots()
    if not slots:
        raise FlexDiffuseError(
            "Nothing to save: drop a guidance image (weight above 0) into the FlexDiffuse panel "
            "or pick a saved reference, then save."
        )
    # Jobs wait meanwhile (the webui's queue): the checkpoint and the towers are theirs too.
    with host.exclusive():
        detect_family(host.load_model())  # a clear error when no checkpoint loads
        width = token_states(host.encode_prompt("")).shape[-1]
        family = detect_family(host.sd_model(), width)
        parts = guided_parts(runtime, family)
        placement = tower_placement(host)
        images = [image for image, _ in args.guidance_images()]
        encoded = {
            part.tower.name: encode_images(runtime, part, images, placement, family)
            for part in parts
            if images
        }
        if images and (not placement.keep_loaded or placement.park is not None):
            host.free_memory()
    saved, pictures, made = [], [], iter(range(len(images)))
    for slot in slots:
        recipe = _slot_recipe(args.params, slot)
        ref = args.references.get(slot)
        if ref is None:
            number = next(made)
            tokens = {tower: encoded[tower][number] for tower in encoded}
            keep = mask_keep(args, slot, len(next(iter(tokens.values()))))
            saved.append(ReferenceImage(images[number].digest, tokens, recipe, keep))
            pictures.append(images[number].pixels)
            continue
        assert ref.reference is not None
        for number, image in enumerate(ref.reference.images):
            tokens = {part.tower.name: _tokens(ref, part.tower)[number] for part in parts}
            mine = image.recipe if recipe == JOB_RECIPE else recipe
            saved.append(ReferenceImage(image.digest, tokens, mine, image.keep))
        pictures += thumbnail_squares(ref.reference)
    towers = tuple(
        TowerIdentity.of(part.tower, settings.source_to_load(host, part.tower)) for part in parts
    )
    try:
        save_reference(Reference(name, tuple(saved), towers, thumbnail(pictures)), path)
    except ReferenceError as error:
        raise FlexDiffuseError(str(error)) from None
    made_with = " and ".join(tower.label for tower in towers)
    count = f"{len(saved)} image{'s' if len(saved) > 1 else ''}"
    return f"Saved the reference '{name}' ({count}, {made_with}) to {path}."


def _tokens(ref: SlotReference, tower: KnownTower) -> list[torch.Tensor]:
    assert ref.reference is not None
    try:
        return ref.reference.tokens(tower)
    except ReferenceError as error:
        raise FlexDiffuseError(str(error)) from None


def _slot_recipe(params: JobParams, slot: str) -> str:
    return params.get(f"{slot}_recipe")


def saver(runtime: Runtime) -> Callable[..., str]:
    """The panel's Save button: name, Overwrite and the script's arguments in, what happened
    out (Markdown)."""

    def save(name: str, overwrite: bool, *args: Any) -> str:
        try:
            values = parse_script_args([True, *args[1:]])
            return save_from_args(runtime, str(name or ""), values, bool(overwrite))
        except FlexDiffuseError as error:
            return f"**Not saved: {error}**"

    return save


def save_from_values(runtime: Runtime, values: Mapping[str, Any]) -> str:
    """Save a reference from an API request: ``name``, ``overwrite`` and the script's named
    values (``image``, ``image_2``..., ``image_recipe``..., ``image_reference``...).

    Raises:
        FlexDiffuseError: a bad request (what is wrong and what to send).
    """
    values = dict(values)
    name = values.pop("name", None)
    if not isinstance(name, str):
        raise FlexDiffuseError('Name the reference: send "name": "<a name>" with its images.')
    overwrite = values.pop("overwrite", False)
    if not isinstance(overwrite, bool):
        raise FlexDiffuseError('"overwrite" must be true or false.')
    args = parse_script_args([{**values, "enabled": True}])
    return save_from_args(runtime, name, args, overwrite)


def add_routes(app: FastAPI, runtime: Runtime) -> None:
    """Add the references API to the webui's app: GET lists, POST saves (JSON body: see
    :func:`save_from_values`); an error answers HTTP 400 with its message."""

    def listed() -> dict[str, Any]:
        return {"references": reference_names(runtime.host)}

    def save(body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        try:
            message = save_from_values(runtime, body)
        except FlexDiffuseError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        return {"saved": message, "references": reference_names(runtime.host)}

    app.add_api_route(ROUTE, listed, methods=["GET"])
    app.add_api_route(ROUTE, save, methods=["POST"])
