"""FlexDiffuse's ComfyUI nodes (the V3 schema of ``comfy_api.v0_0_2``).

ComfyUI's own pattern (KSampler / KSampler Advanced): "FlexDiffuse Image Guidance" guides a
positive and a negative CONDITIONING with images, a preset and a strength; "FlexDiffuse Image
Guidance (Advanced)" shows every parameter instead of a preset. "FlexDiffuse Mapping Preview"
and its Advanced twin show what that guidance does to a prompt. Each node shows only values
that count: a preset sets its values first, then the values a node names override them.

The first release's nodes (``FlexDiffuseGuide``, ``FlexDiffusePreview``), whose preset
overrode widgets that still showed other values, are kept as deprecated nodes: saved workflows
load and give the same pixels, and search no longer offers them. (ComfyUI's node replacement
maps inputs one to one and applies only to nodes that are gone; it cannot carry "a preset over
these widgets" into the new nodes.)

Each image slot of the guidance and preview nodes takes an IMAGE or a saved reference (one
socket of both types, as ComfyUI's own nodes take one of several types), an optional MASK and
a recipe; with saved references alone no CLIP vision model is needed (``reference_nodes.py``).
The recipes are the last widgets: the page stores widget values by position, so saved
workflows load them at "Job settings" and give the same pixels.

Every node computes once per run: ComfyUI caches their outputs, so sampling costs nothing
more per step. Errors raise on the node with a message saying what to connect.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from comfy_api.v0_0_2 import ComfyExtension, io, ui

from .. import presets
from ..engine import PURE_IMAGE_WARNING
from ..params import JobParams
from ..references import Reference
from . import guiding, mapping
from .guiding import GuideError, GuideInputs, Steps, WeightedImages
from .inputs import (
    IMAGE_SLOTS,
    PREVIEW_SKIPS,
    STEP_WINDOW,
    deprecated_values,
    legacy_preset_input,
    method_inputs,
    recipe_inputs,
    simple_inputs,
    spec_input,
    spec_values,
    weight_spec,
)
from .reference_nodes import MASK_TOOLTIP, REFERENCE, REFERENCE_NODES, register_folder

CATEGORY = "conditioning/flexdiffuse"

GUIDE_ALIASES = [
    "image prompt",
    "style",
    "style transfer",
    "reference",
    "reference image",
    "ipadapter",
    "ip adapter",
    "image guidance",
]
"""What users type when they look for an image prompt (IPAdapter is the best-known one)."""

PREVIEW_ALIASES = ["token mapping", "image prompt preview", "ipadapter preview", "style"]

GUIDE_DESCRIPTION = (
    "Guides the prompt with images, no training and no adapter: each prompt token moves toward "
    "the image token it aligns with best (CLIP vision model tokens in the text encoder's space). "
    "A negative image guides the negative prompt. For a step window, pass the output through "
    "ConditioningSetTimestepRange."
)
SIMPLE_GUIDE_DESCRIPTION = (
    f"{GUIDE_DESCRIPTION} Pick a preset and a strength; 'FlexDiffuse Image Guidance "
    "(Advanced)' sets every value by hand."
)
ADVANCED_GUIDE_DESCRIPTION = (
    f"{GUIDE_DESCRIPTION} Every value by hand, no preset (their values: README.md); the "
    "mapping's finer rules are among ComfyUI's advanced inputs."
)
PREVIEW_DESCRIPTION = (
    "Shows which image patch each prompt token maps to and how far it moves: the guidance "
    "images with the taken patches lit, and the token table as text."
)
DEPRECATED_NOTE = (
    " Deprecated: use 'FlexDiffuse Image Guidance' or its Advanced node. Here a preset other "
    "than 'none' overrides the widgets of the values it sets. Kept so that saved workflows "
    "load and give the same images."
)


# ------------------------------------------------------------------ inputs


def _tower_inputs(references: bool = True) -> list[io.Input]:
    """The CLIP vision sockets (``references``: optional, as saved references need none)."""
    return [
        io.ClipVision.Input(
            "clip_vision",
            optional=references,
            tooltip="The CLIP vision model of the checkpoint's text encoder (Load CLIP Vision): "
            "ViT-L/14 for SD 1.x and SDXL, ViT-H/14 for SD 2.x."
            + (" Not needed when every image input is a saved reference." if references else ""),
        ),
        io.ClipVision.Input(
            "clip_vision_2",
            optional=True,
            tooltip="SDXL only: the ViT-bigG/14 vision model, to guide the ViT-bigG half of the "
            "conditioning too (and the pooled vector). Leave empty to guide the ViT-L part only.",
        ),
    ]


IMAGE_TOOLTIP = (
    "A guidance image (a batch of several gives each its own tokens, all at this input's "
    "weight and recipe), or a saved reference (FlexDiffuse Load Reference or Encode "
    "Reference): its images, at this weight, with this recipe or, at 'Job settings', their own."
)


def _image_inputs(references: bool = True) -> list[io.Input]:
    """Each image slot's socket, mask and weight (``references``: the socket takes a saved
    reference too, and a MASK goes with it; the deprecated nodes' take images only)."""
    inputs: list[io.Input] = []
    for number, slot in enumerate(IMAGE_SLOTS, 1):
        optional = number > 1
        more = " Optional: another image with a weight of its own." if optional else ""
        if references:
            inputs.append(
                io.MultiType.Input(
                    slot, [io.Image, REFERENCE], optional=optional, tooltip=IMAGE_TOOLTIP + more
                )
            )
            inputs.append(io.Mask.Input(f"{slot}_mask", optional=True, tooltip=MASK_TOOLTIP))
        else:
            inputs.append(
                io.Image.Input(
                    slot,
                    optional=optional,
                    tooltip="A guidance image; a batch of several gives each its own tokens, "
                    "all at this input's weight." + more,
                )
            )
        inputs.append(spec_input(weight_spec(slot), optional=optional))
    return inputs


def _conditioning_inputs() -> list[io.Input]:
    return [
        io.Conditioning.Input("positive", tooltip="The prompt's conditioning to guide."),
        io.Conditioning.Input(
            "negative",
            tooltip="The negative prompt's conditioning: guided by the negative image "
            "if one is connected, else passed through.",
        ),
    ]


def _negative_image_input() -> io.Input:
    return io.Image.Input(
        "negative_image",
        optional=True,
        tooltip="An image to steer away from: it guides the negative prompt.",
    )


def _clip_input() -> io.Input:
    return io.Clip.Input(
        "clip",
        optional=True,
        tooltip="The checkpoint's CLIP: encodes the mapping concepts, and recognises an empty "
        "prompt, which then takes the image itself (pure image guidance).",
    )


def _preview_positive_input() -> io.Input:
    return io.Conditioning.Input(
        "positive", tooltip="The prompt's conditioning (before FlexDiffuse)."
    )


def _prompt_input() -> io.Input:
    return io.String.Input(
        "prompt",
        optional=True,
        multiline=True,
        default="",
        tooltip="The prompt's text, to label the table's rows with its tokens "
        "(needs the clip input); empty: rows are numbered only.",
    )


def _guide_outputs() -> list[io.Output]:
    return [
        io.Conditioning.Output("positive", tooltip="The guided prompt conditioning."),
        io.Conditioning.Output("negative", tooltip="The negative conditioning."),
    ]


def _preview_outputs() -> list[io.Output]:
    return [
        io.Image.Output(
            "mapping", tooltip="Each guidance image with the patches the prompt takes lit."
        ),
        io.String.Output("table", tooltip="The token table: one row per prompt position."),
    ]


# ------------------------------------------------------------------ running


def job_params(preset: str | None, named: dict[str, Any]) -> JobParams:
    """The job's parameters: the preset's values first, then the values a node names.

    Raises:
        GuideError: an unknown preset or a value out of its range, naming it.
    """
    try:
        return presets.job_params(named, preset)
    except ValueError as error:
        raise GuideError(f"FlexDiffuse: {error}") from error


def _steps(total: int) -> Steps:
    bar = comfy.utils.ProgressBar(total)
    return Steps(
        advance=lambda: bar.update(1),
        check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
        finish=lambda: bar.update_absolute(total),
    )


def _guide_inputs(sockets: dict[str, Any], params: JobParams) -> GuideInputs:
    pair = (sockets.get("clip_vision"), sockets.get("clip_vision_2"))
    towers = tuple(tower for tower in pair if tower is not None)
    images = tuple(
        WeightedImages(
            sockets[slot],
            params.get(f"{slot}_weight"),
            params.get(f"{slot}_recipe"),
            sockets.get(f"{slot}_mask"),
            slot,
        )
        for slot in IMAGE_SLOTS
        if sockets.get(slot) is not None
    )
    negative = None
    if sockets.get("negative_image") is not None:
        negative = WeightedImages(
            sockets["negative_image"], params.negative_weight, name="negative_image"
        )
    return GuideInputs(params, towers, images, negative, sockets.get("clip"))


def guide(
    positive: io.Conditioning.Type,
    negative: io.Conditioning.Type,
    sockets: dict[str, Any],
    params: JobParams,
) -> io.NodeOutput:
    """Every guide node's work: the guided positive and negative conditionings."""
    inputs = _guide_inputs(sockets, params)
    steps = _steps(guiding.work_units(inputs, positive, negative))
    guided, guided_negative = guiding.guide_conditionings(inputs, positive, negative, steps)
    return io.NodeOutput(guided, guided_negative)


def preview(
    node: type[io.ComfyNode],
    positive: io.Conditioning.Type,
    sockets: dict[str, Any],
    params: JobParams,
    prompt: str,
) -> io.NodeOutput:
    """Every preview node's work: the mapping pictures and the token table, shown on ``node``."""
    inputs = _guide_inputs(sockets, params)
    steps = _steps(len(inputs.towers) or 2)
    width = guiding.conditioning_width(positive)
    with guiding.engine_errors():
        towers = guiding.encode_towers(inputs, width, steps)
        concepts = guiding.encode_concepts(inputs) if towers else None
        prompt_guide = guiding.prompt_guide(inputs.params, towers, concepts)
    if prompt_guide is None:
        raise GuideError("Nothing to preview: give an image a weight above 0.")
    states = positive[0][0][0]
    labels = mapping.token_labels(inputs.clip, prompt or "")
    shown = [p for slot in inputs.images if slot.weight > 0 for p in mapping.slot_pictures(slot)]
    pictures, tables = [], []
    pure = guiding.is_empty_prompt(positive[0][0], guiding.empty_prompt_states(inputs.clip))
    for number, reports in enumerate(mapping.explain_guide(states, prompt_guide, pure)):
        part = prompt_guide.parts[number]
        recipes = [image.recipe for image in towers[number].images]
        parts = len(prompt_guide.parts)
        title = f"Vision model {number + 1} of {parts}" if parts > 1 else ""
        pictures += mapping.render_pictures(reports, shown, part)
        tables.append(mapping.render_table(reports, labels, part, recipes, title))
    batch = torch.stack([torch.from_numpy(_array(p)) for p in pictures])
    table = "\n\n".join(tables)
    if pure:
        table = f"{PURE_IMAGE_WARNING}\n\n{table}"
    shown_ui = ui.PreviewImage(batch, cls=node).as_dict() | ui.PreviewText(table).as_dict()
    return io.NodeOutput(batch, table, ui=shown_ui)


def _array(picture) -> np.ndarray:
    return np.asarray(picture, dtype=np.float32) / 255.0


# ------------------------------------------------------------------ the nodes


class ImageGuidance(io.ComfyNode):
    """Guide a positive and a negative conditioning with images: a preset and a strength."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseImageGuidance",
            display_name="FlexDiffuse Image Guidance",
            category=CATEGORY,
            description=SIMPLE_GUIDE_DESCRIPTION,
            search_aliases=GUIDE_ALIASES,
            inputs=[
                *_conditioning_inputs(),
                *_tower_inputs(),
                *_image_inputs(),
                *simple_inputs(),
                _negative_image_input(),
                spec_input(weight_spec("negative"), optional=True),
                _clip_input(),
                *recipe_inputs(),
            ],
            outputs=_guide_outputs(),
        )

    @classmethod
    def execute(
        cls,
        positive: io.Conditioning.Type,
        negative: io.Conditioning.Type,
        image: io.Image.Type | Reference,
        image_weight: float,
        preset: str,
        strength: float,
        concepts: str,
        clip_vision: io.ClipVision.Type | None = None,
        clip_vision_2: io.ClipVision.Type | None = None,
        image_mask: io.Mask.Type | None = None,
        image_2: io.Image.Type | Reference | None = None,
        image_2_mask: io.Mask.Type | None = None,
        image_2_weight: float | None = None,
        image_3: io.Image.Type | Reference | None = None,
        image_3_mask: io.Mask.Type | None = None,
        image_3_weight: float | None = None,
        image_4: io.Image.Type | Reference | None = None,
        image_4_mask: io.Mask.Type | None = None,
        image_4_weight: float | None = None,
        negative_image: io.Image.Type | None = None,
        negative_weight: float | None = None,
        clip: io.Clip.Type | None = None,
        image_recipe: str | None = None,
        image_2_recipe: str | None = None,
        image_3_recipe: str | None = None,
        image_4_recipe: str | None = None,
    ) -> io.NodeOutput:
        arguments = locals()
        params = job_params(preset, spec_values(arguments))
        return guide(positive, negative, arguments, params)


class ImageGuidanceAdvanced(io.ComfyNode):
    """Guide a positive and a negative conditioning with images: every parameter by hand."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseImageGuidanceAdvanced",
            display_name="FlexDiffuse Image Guidance (Advanced)",
            category=CATEGORY,
            description=ADVANCED_GUIDE_DESCRIPTION,
            search_aliases=GUIDE_ALIASES,
            inputs=[
                *_conditioning_inputs(),
                *_tower_inputs(),
                *_image_inputs(),
                *method_inputs(STEP_WINDOW, expert=True),
                _negative_image_input(),
                _clip_input(),
                *recipe_inputs(),
            ],
            outputs=_guide_outputs(),
        )

    @classmethod
    def execute(
        cls,
        positive: io.Conditioning.Type,
        negative: io.Conditioning.Type,
        image: io.Image.Type | Reference,
        clip_vision: io.ClipVision.Type | None = None,
        clip_vision_2: io.ClipVision.Type | None = None,
        image_mask: io.Mask.Type | None = None,
        image_2: io.Image.Type | Reference | None = None,
        image_2_mask: io.Mask.Type | None = None,
        image_3: io.Image.Type | Reference | None = None,
        image_3_mask: io.Mask.Type | None = None,
        image_4: io.Image.Type | Reference | None = None,
        image_4_mask: io.Mask.Type | None = None,
        negative_image: io.Image.Type | None = None,
        clip: io.Clip.Type | None = None,
        **values: float | bool | str,
    ) -> io.NodeOutput:
        """``values``: the widgets, one per parameter of :data:`PARAM_SPECS` by its name."""
        arguments = locals() | values
        return guide(positive, negative, arguments, job_params(None, spec_values(values)))


class MappingPreview(io.ComfyNode):
    """Show how a preset's guidance maps a prompt's tokens to image patches."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseMappingPreview",
            display_name="FlexDiffuse Mapping Preview",
            category=CATEGORY,
            description=f"{PREVIEW_DESCRIPTION} The values of FlexDiffuse Image Guidance.",
            search_aliases=PREVIEW_ALIASES,
            is_output_node=True,
            inputs=[
                _preview_positive_input(),
                *_tower_inputs(),
                *_image_inputs(),
                *simple_inputs(),
                _clip_input(),
                _prompt_input(),
                *recipe_inputs(),
            ],
            outputs=_preview_outputs(),
        )

    @classmethod
    def execute(
        cls,
        positive: io.Conditioning.Type,
        image: io.Image.Type | Reference,
        image_weight: float,
        preset: str,
        strength: float,
        concepts: str,
        clip_vision: io.ClipVision.Type | None = None,
        clip_vision_2: io.ClipVision.Type | None = None,
        image_mask: io.Mask.Type | None = None,
        image_2: io.Image.Type | Reference | None = None,
        image_2_mask: io.Mask.Type | None = None,
        image_2_weight: float | None = None,
        image_3: io.Image.Type | Reference | None = None,
        image_3_mask: io.Mask.Type | None = None,
        image_3_weight: float | None = None,
        image_4: io.Image.Type | Reference | None = None,
        image_4_mask: io.Mask.Type | None = None,
        image_4_weight: float | None = None,
        clip: io.Clip.Type | None = None,
        prompt: str = "",
        image_recipe: str | None = None,
        image_2_recipe: str | None = None,
        image_3_recipe: str | None = None,
        image_4_recipe: str | None = None,
    ) -> io.NodeOutput:
        arguments = locals()
        params = job_params(preset, spec_values(arguments))
        return preview(cls, positive, arguments, params, prompt)


class MappingPreviewAdvanced(io.ComfyNode):
    """Show how guidance with every parameter by hand maps a prompt's tokens."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseMappingPreviewAdvanced",
            display_name="FlexDiffuse Mapping Preview (Advanced)",
            category=CATEGORY,
            description=f"{PREVIEW_DESCRIPTION} The values of FlexDiffuse Image Guidance "
            "(Advanced).",
            search_aliases=PREVIEW_ALIASES,
            is_output_node=True,
            inputs=[
                _preview_positive_input(),
                *_tower_inputs(),
                *_image_inputs(),
                *method_inputs(PREVIEW_SKIPS, expert=True),
                _clip_input(),
                _prompt_input(),
                *recipe_inputs(),
            ],
            outputs=_preview_outputs(),
        )

    @classmethod
    def execute(
        cls,
        positive: io.Conditioning.Type,
        image: io.Image.Type | Reference,
        clip_vision: io.ClipVision.Type | None = None,
        clip_vision_2: io.ClipVision.Type | None = None,
        image_mask: io.Mask.Type | None = None,
        image_2: io.Image.Type | Reference | None = None,
        image_2_mask: io.Mask.Type | None = None,
        image_3: io.Image.Type | Reference | None = None,
        image_3_mask: io.Mask.Type | None = None,
        image_4: io.Image.Type | Reference | None = None,
        image_4_mask: io.Mask.Type | None = None,
        clip: io.Clip.Type | None = None,
        prompt: str = "",
        **values: float | bool | str,
    ) -> io.NodeOutput:
        """``values``: the widgets, one per parameter of :data:`PARAM_SPECS` by its name."""
        arguments = locals() | values
        params = job_params(None, spec_values(values, PREVIEW_SKIPS))
        return preview(cls, positive, arguments, params, prompt)


# ------------------------------------------------------------------ the first release's nodes


class FlexDiffuseGuide(io.ComfyNode):
    """Deprecated: the first release's guide node, where a preset overrides widgets."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseGuide",
            display_name="FlexDiffuse Image Guidance (deprecated)",
            category=CATEGORY,
            description=GUIDE_DESCRIPTION + DEPRECATED_NOTE,
            is_deprecated=True,
            inputs=[
                *_conditioning_inputs(),
                *_tower_inputs(references=False),
                *_image_inputs(references=False),
                legacy_preset_input(),
                *method_inputs(STEP_WINDOW),
                _negative_image_input(),
                _clip_input(),
            ],
            outputs=_guide_outputs(),
        )

    @classmethod
    def execute(cls, positive, negative, clip_vision, image, **kwargs) -> io.NodeOutput:
        kwargs.update(clip_vision=clip_vision, image=image)
        params = job_params(*deprecated_values(kwargs, STEP_WINDOW))
        return guide(positive, negative, kwargs, params)


class FlexDiffusePreview(io.ComfyNode):
    """Deprecated: the first release's preview node, where a preset overrides widgets."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffusePreview",
            display_name="FlexDiffuse Mapping Preview (deprecated)",
            category=CATEGORY,
            description=PREVIEW_DESCRIPTION + DEPRECATED_NOTE,
            is_deprecated=True,
            is_output_node=True,
            inputs=[
                _preview_positive_input(),
                *_tower_inputs(references=False),
                *_image_inputs(references=False),
                legacy_preset_input(),
                *method_inputs(PREVIEW_SKIPS),
                _clip_input(),
                _prompt_input(),
            ],
            outputs=_preview_outputs(),
        )

    @classmethod
    def execute(cls, positive, clip_vision, image, **kwargs) -> io.NodeOutput:
        kwargs.update(clip_vision=clip_vision, image=image)
        params = job_params(*deprecated_values(kwargs, PREVIEW_SKIPS))
        return preview(cls, positive, kwargs, params, kwargs.get("prompt") or "")


NODES: list[type[io.ComfyNode]] = [
    ImageGuidance,
    ImageGuidanceAdvanced,
    MappingPreview,
    MappingPreviewAdvanced,
    *REFERENCE_NODES,
    FlexDiffuseGuide,
    FlexDiffusePreview,
]


class FlexDiffuseExtension(ComfyExtension):
    """The node pack as ComfyUI loads it (``comfy_entrypoint`` in the root ``__init__.py``)."""

    async def on_load(self) -> None:
        """ComfyUI's references folder, registered before any node lists it."""
        register_folder()

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
