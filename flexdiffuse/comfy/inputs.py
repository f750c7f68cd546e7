"""The nodes' widgets, generated from :data:`~flexdiffuse.params.PARAM_SPECS`.

One spec per parameter drives the webui panel, its API, infotext, the X/Y/Z axes and these
inputs: a widget's name is the parameter's name (what the API prompt and saved images store),
its label, range, default and tooltip are the spec's. The page's workflow stores widget values
by position (required inputs, then optional ones): a parameter added later must come after
the others, or workflows saved before would load shifted.
"""

from __future__ import annotations

from typing import Any

from comfy_api.latest import io

from ..params import PARAM_SPECS, ParamSpec
from ..presets import PRESETS

STEP_WINDOW = ("start", "end")
"""Parameters no node has: ComfyUI's ConditioningSetTimestepRange sets when a conditioning
applies (example_workflows/flexdiffuse-sd15-step-window.json)."""

IMAGE_SLOTS = ("image", "image_2", "image_3", "image_4")
"""The prompt's image inputs; each one's weight is the parameter ``<slot>_weight``."""

NEGATIVE_SPECS = ("negative_weight",)
PREVIEW_SKIPS = (*STEP_WINDOW, *NEGATIVE_SPECS)

NO_PRESET = "none"
PRESET_TOOLTIP = (
    "A recipe from the method's write-up. It sets threshold, floor, automatic floor, clustered, "
    "linear, max guidance, priority and reuse, and the widgets below for those are then "
    "ignored; 'none' uses the widgets. README.md says what each is for."
)


def preset_input() -> io.Combo.Input:
    """The preset dropdown: 'none' (the widgets' values) or one of the presets by label."""
    return io.Combo.Input(
        "preset",
        options=[NO_PRESET, *(preset.label for preset in PRESETS)],
        default=NO_PRESET,
        tooltip=PRESET_TOOLTIP,
    )


def spec_input(spec: ParamSpec, *, optional: bool = False) -> io.Input:
    """The widget of one parameter."""
    common: dict[str, Any] = {
        "display_name": spec.label,
        "optional": optional,
        "tooltip": spec.info,
    }
    if spec.kind == "float":
        return io.Float.Input(
            spec.name,
            default=spec.default,
            min=spec.minimum,
            max=spec.maximum,
            step=spec.step,
            round=False,
            **common,
        )
    if spec.kind == "bool":
        return io.Boolean.Input(spec.name, default=spec.default, **common)
    if spec.kind == "choice":
        assert spec.choices is not None
        labels = list(spec.choices.values())
        return io.Combo.Input(
            spec.name, options=labels, default=spec.choices[spec.default], **common
        )
    return io.String.Input(
        spec.name, default=spec.default, placeholder=spec.placeholder, multiline=False, **common
    )


def method_inputs(skip: tuple[str, ...]) -> list[io.Input]:
    """The widgets of every parameter but the images' weights and ``skip``, in spec order."""
    return [
        spec_input(spec)
        for spec in PARAM_SPECS
        if spec.name not in skip and not spec.name.startswith("image")
    ]


def spec_values(kwargs: dict[str, Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """The parameters among a node's arguments (absent optional widgets: their defaults)."""
    return {
        spec.name: kwargs[spec.name]
        for spec in PARAM_SPECS
        if spec.name not in skip and kwargs.get(spec.name) is not None
    }


def weight_spec(slot: str) -> ParamSpec:
    """The weight parameter of an image slot."""
    return next(spec for spec in PARAM_SPECS if spec.name == f"{slot}_weight")
