"""FlexDiffuse's ComfyUI nodes (the V3 schema of ``comfy_api.latest``).

Two nodes: "FlexDiffuse Image Guidance" guides a positive and a negative CONDITIONING with
guidance images and an optional negative image; "FlexDiffuse Mapping Preview" shows what that
guidance does to a prompt. Both compute once per run: ComfyUI caches their outputs, so sampling
costs nothing more per step. Errors raise on the node with a message saying what to connect.
"""

from __future__ import annotations

from typing import Any

import comfy.model_management
import comfy.utils
import numpy as np
import torch
from comfy_api.latest import ComfyExtension, io, ui

from ..engine import PURE_IMAGE_WARNING
from ..presets import preset_values
from . import guiding, mapping
from .guiding import GuideError, GuideInputs, Steps, WeightedImages
from .inputs import (
    IMAGE_SLOTS,
    NO_PRESET,
    PREVIEW_SKIPS,
    STEP_WINDOW,
    method_inputs,
    preset_input,
    spec_input,
    spec_values,
    weight_spec,
)

CATEGORY = "FlexDiffuse"

GUIDE_DESCRIPTION = (
    "Guides the prompt with images, no training and no adapter: each prompt token moves toward "
    "the image token it aligns with best (CLIP vision model tokens in the text encoder's space). "
    "A negative image guides the negative prompt. For a step window, pass the output through "
    "ConditioningSetTimestepRange."
)
PREVIEW_DESCRIPTION = (
    "Shows which image patch each prompt token maps to and how far it moves: the guidance "
    "images with the taken patches lit, and the token table as text."
)


def _tower_inputs() -> list[io.Input]:
    return [
        io.ClipVision.Input(
            "clip_vision",
            tooltip="The CLIP vision model of the checkpoint's text encoder (Load CLIP Vision): "
            "ViT-L/14 for SD 1.x and SDXL, ViT-H/14 for SD 2.x.",
        ),
        io.ClipVision.Input(
            "clip_vision_2",
            optional=True,
            tooltip="SDXL only: the ViT-bigG/14 vision model, to guide the ViT-bigG half of the "
            "conditioning too (and the pooled vector). Leave empty to guide the ViT-L part only.",
        ),
    ]


def _image_inputs() -> list[io.Input]:
    inputs: list[io.Input] = []
    for number, slot in enumerate(IMAGE_SLOTS, 1):
        optional = number > 1
        inputs.append(
            io.Image.Input(
                slot,
                optional=optional,
                tooltip="A guidance image; a batch of several gives each its own tokens, "
                "all at this input's weight."
                + (" Optional: another image with a weight of its own." if optional else ""),
            )
        )
        inputs.append(spec_input(weight_spec(slot), optional=optional))
    return inputs


def _clip_input() -> io.Input:
    return io.Clip.Input(
        "clip",
        optional=True,
        tooltip="The checkpoint's CLIP: encodes the mapping concepts, and recognises an empty "
        "prompt, which then takes the image itself (pure image guidance).",
    )


def _steps(total: int) -> Steps:
    bar = comfy.utils.ProgressBar(total)
    return Steps(
        advance=lambda: bar.update(1),
        check_interrupt=comfy.model_management.throw_exception_if_processing_interrupted,
        finish=lambda: bar.update_absolute(total),
    )


def _params(kwargs: dict[str, Any], skip: tuple[str, ...]):
    preset = kwargs.get("preset", NO_PRESET)
    chosen = {} if preset in (None, NO_PRESET) else preset_values(preset)
    return guiding.params_from_values(spec_values(kwargs, skip), chosen)


def _guide_inputs(kwargs: dict[str, Any], skip: tuple[str, ...]) -> GuideInputs:
    params = _params(kwargs, skip)
    towers = tuple(t for t in (kwargs["clip_vision"], kwargs.get("clip_vision_2")) if t is not None)
    images = tuple(
        WeightedImages(kwargs[slot], params.get(f"{slot}_weight"))
        for slot in IMAGE_SLOTS
        if kwargs.get(slot) is not None
    )
    negative = None
    if kwargs.get("negative_image") is not None:
        negative = WeightedImages(kwargs["negative_image"], params.negative_weight)
    return GuideInputs(params, towers, images, negative, kwargs.get("clip"))


class FlexDiffuseGuide(io.ComfyNode):
    """Guide a positive and a negative conditioning with images."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffuseGuide",
            display_name="FlexDiffuse Image Guidance",
            category=CATEGORY,
            description=GUIDE_DESCRIPTION,
            inputs=[
                io.Conditioning.Input("positive", tooltip="The prompt's conditioning to guide."),
                io.Conditioning.Input(
                    "negative",
                    tooltip="The negative prompt's conditioning: guided by the negative image "
                    "if one is connected, else passed through.",
                ),
                *_tower_inputs(),
                *_image_inputs(),
                preset_input(),
                *method_inputs(STEP_WINDOW),
                io.Image.Input(
                    "negative_image",
                    optional=True,
                    tooltip="An image to steer away from: it guides the negative prompt.",
                ),
                _clip_input(),
            ],
            outputs=[
                io.Conditioning.Output("positive", tooltip="The guided prompt conditioning."),
                io.Conditioning.Output("negative", tooltip="The negative conditioning."),
            ],
        )

    @classmethod
    def execute(cls, positive, negative, clip_vision, image, **kwargs) -> io.NodeOutput:
        kwargs.update(clip_vision=clip_vision, image=image)
        inputs = _guide_inputs(kwargs, STEP_WINDOW)
        steps = _steps(guiding.work_units(inputs, positive, negative))
        guided, guided_negative = guiding.guide_conditionings(inputs, positive, negative, steps)
        return io.NodeOutput(guided, guided_negative)


class FlexDiffusePreview(io.ComfyNode):
    """Show how guidance maps a prompt's tokens to image patches."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="FlexDiffusePreview",
            display_name="FlexDiffuse Mapping Preview",
            category=CATEGORY,
            description=PREVIEW_DESCRIPTION,
            is_output_node=True,
            inputs=[
                io.Conditioning.Input(
                    "positive", tooltip="The prompt's conditioning (before FlexDiffuse)."
                ),
                *_tower_inputs(),
                *_image_inputs(),
                preset_input(),
                *method_inputs(PREVIEW_SKIPS),
                _clip_input(),
                io.String.Input(
                    "prompt",
                    optional=True,
                    multiline=True,
                    default="",
                    tooltip="The prompt's text, to label the table's rows with its tokens "
                    "(needs the clip input); empty: rows are numbered only.",
                ),
            ],
            outputs=[
                io.Image.Output(
                    "mapping", tooltip="Each guidance image with the patches the prompt takes lit."
                ),
                io.String.Output("table", tooltip="The token table: one row per prompt position."),
            ],
        )

    @classmethod
    def execute(cls, positive, clip_vision, image, **kwargs) -> io.NodeOutput:
        kwargs.update(clip_vision=clip_vision, image=image)
        inputs = _guide_inputs(kwargs, PREVIEW_SKIPS)
        steps = _steps(len(inputs.towers))
        width = guiding.conditioning_width(positive)
        with guiding.engine_errors():
            towers = guiding.encode_towers(inputs, width, steps)
            concepts = guiding.encode_concepts(inputs) if towers else None
            guide = guiding.prompt_guide(inputs.params, towers, concepts)
        if guide is None:
            raise GuideError("Nothing to preview: give an image a weight above 0.")
        states = positive[0][0][0]
        labels = mapping.token_labels(inputs.clip, kwargs.get("prompt") or "")
        pixels = [p for group in inputs.images if group.weight > 0 for p in group.pixels]
        shown = mapping.pictures(pixels)
        pictures, tables = [], []
        pure = guiding.is_empty_prompt(positive[0][0], guiding.empty_prompt_states(inputs.clip))
        for number, reports in enumerate(mapping.explain_guide(states, guide, pure)):
            part = guide.parts[number]
            count = len(part.image_tokens)
            title = (
                f"Vision model {number + 1} of {len(guide.parts)}" if len(guide.parts) > 1 else ""
            )
            pictures += mapping.render_pictures(reports, shown, count)
            tables.append(mapping.render_table(reports, labels, count, len(shown), title))
        batch = torch.stack([torch.from_numpy(_array(p)) for p in pictures])
        table = "\n\n".join(tables)
        if pure:
            table = f"{PURE_IMAGE_WARNING}\n\n{table}"
        shown_ui = ui.PreviewImage(batch, cls=cls).as_dict() | ui.PreviewText(table).as_dict()
        return io.NodeOutput(batch, table, ui=shown_ui)


def _array(picture) -> np.ndarray:
    return np.asarray(picture, dtype=np.float32) / 255.0


NODES: list[type[io.ComfyNode]] = [FlexDiffuseGuide, FlexDiffusePreview]


class FlexDiffuseExtension(ComfyExtension):
    """The node pack as ComfyUI loads it (``comfy_entrypoint`` in the root ``__init__.py``)."""

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return list(NODES)
