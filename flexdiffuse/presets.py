"""Presets: named recipes for the method's sliders, from the original write-up's experiments.

A preset is data: values for :data:`PRESET_FIELDS`, checked against the parameter specs when
this module is imported. Choosing one sets those parameters and nothing else (not the image
strength, the concepts prompt, the step window or the image weights), so "which recipe" and
"how much image" stay two separate moves. A preset is a starting point, not a setting: it is
not stored anywhere (infotext records the parameters it set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .params import JOB_RECIPE, RECIPE_LABELS, SPECS_BY_NAME, JobParams, check_value

PRESET_FIELDS: tuple[str, ...] = (
    "threshold_mult",
    "threshold_floor",
    "auto_floor",
    "clustered",
    "linear",
    "max_guidance",
    "order",
    "reuse",
)
"""The parameters every preset sets: the weighting methods, their floor and cap, and the
mapping options. Every preset gives all of them, so the result never depends on the sliders'
previous values."""


@dataclass(frozen=True)
class Preset:
    """One recipe: ``key`` is its name for the API, ``label`` what the panel shows,
    ``description`` what it is for, ``source`` the write-up passage it comes from."""

    key: str
    label: str
    description: str
    source: str
    values: Mapping[str, Any]


def _preset(key: str, label: str, description: str, source: str, **values: Any) -> Preset:
    return Preset(key, label, description, source, MappingProxyType(values))


PRESETS: tuple[Preset, ...] = (
    _preset(
        "original",
        "Original defaults",
        "The original UI's settings: a little of every method, capped at 0.35. Start here.",
        "The original sandbox UI's slider values (threshold 0.25, floor 0.75, clustered 0.15, "
        "linear 0.5, max 0.35), and the write-up's experiment defaults: 'Optimal Fit Mapping "
        "with reused Latents'.",
        threshold_mult=0.25,
        threshold_floor=0.75,
        auto_floor=False,
        clustered=0.15,
        linear=0.5,
        max_guidance=0.35,
        order="fit",
        reuse=True,
    ),
    _preset(
        "strong",
        "Strong: matches and style",
        "Prompt tokens aligned with the image take its tokens whole, and the style end of the "
        "prompt follows the image. For an image that matches the prompt well.",
        "Deer, 'Tuned Settings': Threshold Mult = 1.0, Threshold Floor = 0.2, Clustered = 0.0 "
        "('gave the deer a warped tree neck'), Linear = 1.0, Max Image Guidance = 1.0. "
        "'Much spooky!'",
        threshold_mult=1.0,
        threshold_floor=0.2,
        auto_floor=False,
        clustered=0.0,
        linear=1.0,
        max_guidance=1.0,
        order="fit",
        reuse=True,
    ),
    _preset(
        "style",
        "Style only",
        "Only the prompt's tail (style, texture, colour) moves toward the image; the subject "
        "stays the prompt's. Safe when the image does not match the prompt.",
        "Deer: 'Now watch what happens if we just use linear, setting threshold = 0' (the "
        "tuned settings otherwise); and 'Linear Style guidance should be fine to use though in "
        "these cases' (Help, my image looks like garbage).",
        threshold_mult=0.0,
        threshold_floor=0.2,
        auto_floor=False,
        clustered=0.0,
        linear=1.0,
        max_guidance=1.0,
        order="fit",
        reuse=True,
    ),
    _preset(
        "away",
        "Away from the image's matches",
        "The start of the prompt is pushed away from the image tokens it matches while its "
        "end takes the image's style: a new direction that keeps true to the prompt.",
        "Turtle, 'Tuned Settings': Threshold = -0.25, Clustered = 0.0, Linear = 1.0, Max "
        "Image Guidance = 1.0; 'Negative Threshold setting moves us away from matched concepts'. "
        "Floor 0: the run predates the floor slider (it used the automatic value), and with "
        "the whole-vector blend a negative multiplier acts only when every token reaches the "
        "floor (docs/algorithm.md §3, §15).",
        threshold_mult=-0.25,
        threshold_floor=0.0,
        auto_floor=False,
        clustered=0.0,
        linear=1.0,
        max_guidance=1.0,
        order="fit",
        reuse=True,
    ),
    _preset(
        "concepts",
        "Concepts only",
        "Nothing moves but the prompt tokens matching a concept you name in Mapping concepts "
        "(say 'creepy tree'), which take that part of the image. Type the concepts there.",
        "'A creepy tree creature, 8k dslr photo' - Concept Mapping: 'I used all default "
        "settings, but turned the default image guidance features all to 0: Threshold Mult = "
        "0, Clustered = 0, Linear = 0, Max Image Guidance = 0'.",
        threshold_mult=0.0,
        threshold_floor=0.75,
        auto_floor=False,
        clustered=0.0,
        linear=0.0,
        max_guidance=0.0,
        order="fit",
        reuse=True,
    ),
)
"""The presets, in the order the panel lists them."""

CONCEPTS_PRESET = "concepts"
"""The preset that acts only through the mapping-concepts prompt (the panel points at it)."""


def _check(presets: tuple[Preset, ...]) -> None:
    names = [p.key for p in presets] + [p.label.lower() for p in presets]
    if len(set(names)) != len(names):
        raise ValueError("Preset keys and labels must be unique.")
    for preset in presets:
        if tuple(preset.values) != PRESET_FIELDS:
            raise ValueError(f"Preset {preset.key!r} must set exactly {PRESET_FIELDS}.")
        for name, value in preset.values.items():
            if not SPECS_BY_NAME[name].engine or check_value(name, value) != value:
                raise ValueError(f"Preset {preset.key!r}: {name} = {value!r} is not valid.")
    recipes = {k: v for k, v in RECIPE_LABELS.items() if k != JOB_RECIPE}
    if recipes != {p.key: p.label for p in presets}:
        raise ValueError("params.RECIPE_LABELS must list every preset's key and label.")


_check(PRESETS)


def find_preset(name: str) -> Preset:
    """The preset named ``name``: its key or its label, in any case.

    Raises:
        ValueError: naming the presets there are.
    """
    text = name.strip().lower() if isinstance(name, str) else None
    for preset in PRESETS:
        if text in (preset.key, preset.label.lower()):
            return preset
    known = ", ".join(f"{p.key!r} ({p.label})" for p in PRESETS)
    raise ValueError(f"Unknown preset {name!r}; the presets are {known}.")


def preset_values(name: str) -> dict[str, Any]:
    """The parameter values preset ``name`` sets (see :func:`find_preset`)."""
    return dict(find_preset(name).values)


def job_params(values: Mapping[str, Any], preset: str | None = None) -> JobParams:
    """The parameters of a job: the defaults, preset ``preset``'s values over them, and the
    ``values`` named over those (None or empty preset: none).

    The one rule of every way in where a preset and named values meet (the webui's API, the
    ComfyUI nodes): a value named explicitly is never silently overridden by a preset.

    Raises:
        ValueError: an unknown preset, or a value out of its range, naming the parameter.
    """
    chosen = {} if preset is None or not str(preset).strip() else preset_values(preset)
    return JobParams().replace(**{**chosen, **values})
