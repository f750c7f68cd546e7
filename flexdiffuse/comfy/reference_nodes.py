"""The saved-reference nodes: Encode Reference, Save Reference, Load Reference.

ComfyUI's own pattern for a model file (a loader with a combo of the folder's files, the
page's Refresh to list new ones) and for saving (an output node with a name): a reference is
encoded from images and CLIP vision models once, saved by name, and loaded back with no CLIP
vision model at all. Any image socket of the guidance and preview nodes takes it. Files live
in the folder ComfyUI knows as ``flexdiffuse_references`` (``models/FlexDiffuse/references``,
and any folder extra_model_paths.yaml adds under that name) and are read with safetensors only
(:func:`~flexdiffuse.references.load_reference`).
"""

from __future__ import annotations

import os
from pathlib import Path

import folder_paths
from comfy_api.v0_0_2 import io, ui

from ..params import JOB_RECIPE, RECIPE_LABELS
from ..references import (
    REFERENCES_SUBFOLDER,
    ReferenceError,
    list_references,
    load_reference,
    reference_hash,
    reference_path,
    save_reference,
)
from . import referencing
from .guiding import GuideError, engine_errors

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


CATEGORY = "conditioning/flexdiffuse"
REFERENCE_ALIASES = ["reference", "style", "style reference", "image embeds", "save embeds"]

RECIPE_TOOLTIP = (
    "What these images give wherever the reference is used with the recipe 'Job settings': "
    "'Job settings' takes the guidance node's own values; a preset (say 'Style only') is "
    "saved with the images. A guidance node's own recipe for the slot, if not 'Job settings', "
    "overrides it."
)
MASK_TOOLTIP = (
    "Optional: the part of each picture that may be taken (1 = taken). Load Image's mask is "
    "1 where its picture is transparent: paint that part with the Mask Editor. One mask for "
    "every picture, or one per picture."
)


class EncodeReference(io.ComfyNode):
    """Encode guidance images into a reference (once; save it to reuse it)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseEncodeReference",
            display_name="FlexDiffuse Encode Reference",
            category=CATEGORY,
            description="Encodes images with the CLIP vision model(s) into a FlexDiffuse "
            "reference, with a recipe and a mask: connect it to any image input of the "
            "guidance nodes, or save it with FlexDiffuse Save Reference to reuse it without "
            "loading a CLIP vision model.",
            search_aliases=REFERENCE_ALIASES,
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="The pictures to encode (a batch: each picture its own tokens).",
                ),
                io.ClipVision.Input(
                    "clip_vision",
                    tooltip="The CLIP vision model the checkpoints to guide need: ViT-L/14 "
                    "for SD 1.x and SDXL, ViT-H/14 for SD 2.x.",
                ),
                io.Combo.Input(
                    "recipe",
                    options=list(RECIPE_LABELS.values()),
                    default=RECIPE_LABELS[JOB_RECIPE],
                    tooltip=RECIPE_TOOLTIP,
                ),
                io.ClipVision.Input(
                    "clip_vision_2",
                    optional=True,
                    tooltip="SDXL: the ViT-bigG/14 vision model too, so the reference guides "
                    "both halves of SDXL's conditioning and its pooled vector.",
                ),
                io.Mask.Input("mask", optional=True, tooltip=MASK_TOOLTIP),
                REFERENCE.Input(
                    "add_to",
                    optional=True,
                    tooltip="Optional: a reference to add these images to, with their own "
                    "recipe and mask (say style pictures, then a subject): saved as one.",
                ),
            ],
            outputs=[REFERENCE.Output("reference", tooltip="The encoded reference.")],
        )

    @classmethod
    def execute(
        cls,
        images: io.Image.Type,
        clip_vision: io.ClipVision.Type,
        recipe: str,
        clip_vision_2: io.ClipVision.Type | None = None,
        mask: io.Mask.Type | None = None,
        add_to: REFERENCE.Type | None = None,
    ) -> io.NodeOutput:
        towers = [t for t in (clip_vision, clip_vision_2) if t is not None]
        with engine_errors():
            reference = referencing.encode_reference(images, towers, recipe, mask, add_to)
        return io.NodeOutput(reference)


class SaveReference(io.ComfyNode):
    """Save a reference by name in the references folder."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseSaveReference",
            display_name="FlexDiffuse Save Reference",
            category=CATEGORY,
            description="Saves a FlexDiffuse reference as NAME.safetensors in "
            "models/FlexDiffuse/references (ComfyUI's flexdiffuse_references folder), "
            "replacing one of the same name. FlexDiffuse Load Reference lists it after the "
            "page's Refresh (R).",
            search_aliases=REFERENCE_ALIASES,
            is_output_node=True,
            inputs=[
                REFERENCE.Input("reference", tooltip="The reference to save."),
                io.String.Input(
                    "name",
                    default="my-reference",
                    tooltip="The reference's name: letters, digits, spaces, '-', '_' and '.'; "
                    "saving a name again replaces that reference.",
                ),
            ],
            outputs=[],
        )

    @classmethod
    def execute(cls, reference: REFERENCE.Type, name: str) -> io.NodeOutput:
        try:
            path = reference_path(save_folder(), name)
            saved = save_reference(referencing.named(reference, path.stem), path)
        except ReferenceError as error:
            raise GuideError(f"FlexDiffuse: {error}") from error
        images = len(reference.images)
        towers = " and ".join(tower.label for tower in reference.towers)
        text = (
            f"Saved the reference '{saved.stem}' ({images} image{'s' * (images != 1)}, "
            f"{towers}) to {saved}. Refresh the page (R) to pick it in FlexDiffuse Load "
            "Reference."
        )
        shown = ui.PreviewImage(referencing.thumbnail_image(reference), cls=cls).as_dict()
        return io.NodeOutput(ui=shown | ui.PreviewText(text).as_dict())


class LoadReference(io.ComfyNode):
    """Load a saved reference: no CLIP vision model is loaded to guide with it."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        names = saved_names()
        return io.Schema(
            node_id="FlexDiffuseLoadReference",
            display_name="FlexDiffuse Load Reference",
            category=CATEGORY,
            description="Loads a reference saved with FlexDiffuse Save Reference (read with "
            "safetensors only). Connect it to any image input of the guidance nodes: the job "
            "loads no CLIP vision model and gives the pixels the reference's images give.",
            search_aliases=REFERENCE_ALIASES,
            inputs=[
                io.Combo.Input(
                    "reference",
                    options=names,
                    default=names[0] if names else None,
                    tooltip="A saved reference in models/FlexDiffuse/references; the page's "
                    "Refresh (R) lists newly saved ones.",
                ),
            ],
            outputs=[
                REFERENCE.Output("reference", tooltip="The saved reference."),
                io.Image.Output("thumbnail", tooltip="Its images, small, side by side."),
            ],
        )

    @classmethod
    def fingerprint_inputs(cls, reference: str) -> str:
        """The file's hash: a reference saved again under its name is loaded again."""
        try:
            return reference_hash(saved_path(reference))
        except (GuideError, OSError):
            return ""

    @classmethod
    def execute(cls, reference: str) -> io.NodeOutput:
        try:
            loaded = load_reference(saved_path(reference))
        except ReferenceError as error:
            raise GuideError(f"FlexDiffuse: {error}") from error
        return io.NodeOutput(loaded, referencing.thumbnail_image(loaded))


REFERENCE_NODES: list[type[io.ComfyNode]] = [EncodeReference, SaveReference, LoadReference]
