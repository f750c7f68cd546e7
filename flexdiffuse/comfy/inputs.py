"""The nodes' widgets, generated from :data:`~flexdiffuse.params.PARAM_SPECS`.

One spec per parameter drives the webui panel, its API, infotext, the X/Y/Z axes and these
inputs: a widget's name is the parameter's name (what the API prompt and saved images store),
its label, range, default and tooltip are the spec's. The page's workflow stores widget values
by position (required inputs, then optional ones): a parameter added later must come after
the others, or workflows saved before would load shifted.

Each node shows one set of values that all count: the simple nodes a preset and the values
no preset sets (strength, the images' weights, the concepts), the Advanced nodes every
parameter and no preset (ComfyUI's KSampler / KSampler Advanced pattern).
"""

from __future__ import annotations

from typing import Any

from comfy_api.v0_0_2 import io

from ..params import IMAGE_SLOTS, PARAM_SPECS, SPECS_BY_NAME, ParamSpec
from ..presets import PRESET_FIELDS, PRESETS

STEP_WINDOW = ("start", "end")
"""Parameters no node has: ComfyUI's ConditioningSetTimestepRange sets when a conditioning
applies (example_workflows/flexdiffuse-sd15-step-window.json)."""


NEGATIVE_SPECS = ("negative_weight",)
PREVIEW_SKIPS = (*STEP_WINDOW, *NEGATIVE_SPECS)

SIMPLE_SPECS = ("strength", "concepts")
"""The simple nodes' parameters besides the images' weights: what no preset sets."""

EXPERT_SPECS = ("threshold_floor", "auto_floor", "order", "reuse", "concept_threshold")
"""The Advanced nodes' widgets ComfyUI shows only with its advanced inputs ("Show advanced
inputs"): the threshold's floor and the mapping's rules, fine tuning after the weights."""

NO_PRESET = "none"
"""The deprecated nodes' 'no preset' choice (their widgets' values count)."""

PRESET_TOOLTIP = (
    "A recipe from the method's write-up: it sets how prompt tokens are weighted (threshold, "
    "clustered, linear, max guidance) and mapped. Strength and the images' weights scale it. "
    "'FlexDiffuse Image Guidance (Advanced)' shows every value instead. README.md says what "
    "each preset is for."
)


def preset_input() -> io.Combo.Input:
    """The simple nodes' preset dropdown, the presets by label, the original's first."""
    labels = [preset.label for preset in PRESETS]
    return io.Combo.Input(
        "preset", options=labels, default=labels[0], display_name="Preset", tooltip=PRESET_TOOLTIP
    )


LEGACY_PRESET_TOOLTIP = (
    "A recipe from the method's write-up. It sets threshold, floor, automatic floor, clustered, "
    "linear, max guidance, priority and reuse, and the widgets below for those are then "
    "ignored; 'none' uses the widgets. README.md says what each is for."
)


def legacy_preset_input() -> io.Combo.Input:
    """The deprecated nodes' preset dropdown: 'none' (the widgets' values) or a preset."""
    return io.Combo.Input(
        "preset",
        options=[NO_PRESET, *(preset.label for preset in PRESETS)],
        default=NO_PRESET,
        tooltip=LEGACY_PRESET_TOOLTIP,
    )


def spec_input(spec: ParamSpec, *, optional: bool = False, advanced: bool = False) -> io.Input:
    """The widget of one parameter (``advanced``: shown with ComfyUI's advanced inputs)."""
    common: dict[str, Any] = {
        "display_name": spec.label,
        "optional": optional,
        "tooltip": spec.info,
    }
    if advanced:
        common["advanced"] = True
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


def method_inputs(skip: tuple[str, ...], *, expert: bool = False) -> list[io.Input]:
    """The widgets of every parameter but the images' weights and ``skip``, in spec order
    (``expert``: :data:`EXPERT_SPECS` marked advanced)."""
    return [
        spec_input(spec, advanced=expert and spec.name in EXPERT_SPECS)
        for spec in PARAM_SPECS
        if spec.name not in skip and not spec.name.startswith("image")
    ]


def simple_inputs() -> list[io.Input]:
    """The simple nodes' widgets besides the images' weights: the preset, then what no preset
    sets."""
    return [preset_input(), *(spec_input(SPECS_BY_NAME[name]) for name in SIMPLE_SPECS)]


def spec_values(kwargs: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The parameters among a node's arguments (absent optional widgets: their defaults)."""
    return {
        spec.name: kwargs[spec.name]
        for spec in PARAM_SPECS
        if spec.name not in skip and kwargs.get(spec.name) is not None
    }


def deprecated_values(kwargs: dict[str, Any], skip: tuple[str, ...]) -> tuple[str | None, dict]:
    """The deprecated nodes' preset and named values: with a preset chosen, the widgets of the
    values it sets were ignored, so they are not named."""
    preset = kwargs.get("preset")
    values = spec_values(kwargs, skip)
    if preset in (None, NO_PRESET):
        return None, values
    return preset, {k: v for k, v in values.items() if k not in PRESET_FIELDS}


def weight_spec(slot: str) -> ParamSpec:
    """The weight parameter of an image slot."""
    return SPECS_BY_NAME[f"{slot}_weight"]


def recipe_inputs() -> list[io.Input]:
    """Each image slot's recipe dropdown ("Job settings": the node's own values).

    Optional and last: saved workflows store widget values by position, so the recipes come
    after every widget a workflow saved before them has (it loads them at their default)."""
    return [spec_input(SPECS_BY_NAME[f"{slot}_recipe"], optional=True) for slot in IMAGE_SLOTS]
