"""The parameters: one spec per parameter, owned by the dataclass that uses it.

Two frozen dataclasses hold them. :class:`GuidanceParams` is what the engine uses
(:func:`~flexdiffuse.engine.guide` accepts nothing else, so a job-only setting can never be
passed to it); :class:`JobParams` is everything a guided generation is set up with: the
engine's parameters plus the concepts prompt, the step window, the pooled strength and the
image weights. Each field carries its :class:`ParamSpec` (label, infotext key, range, hint),
and :data:`PARAM_SPECS` lists all of them once, so the panel, the HTTP API, infotext and the
X/Y/Z axes are generated from one place: for them, adding a parameter means adding one field.
What else a new parameter takes (the engine, the oracle, the docs): docs/development.md,
"Adding a parameter".
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Order = Literal["fit", "text"]

ORDER_LABELS: dict[str, str] = {"fit": "Optimal fit", "text": "Text order"}
"""Mapping priority values and the labels users see for them."""

JOB_RECIPE = "job"
"""An image's recipe for the job's own parameters (the panel's sliders, the node's widgets)."""

RECIPE_LABELS: dict[str, str] = {
    JOB_RECIPE: "Job settings",
    "original": "Original defaults",
    "strong": "Strong: matches and style",
    "style": "Style only",
    "away": "Away from the image's matches",
    "concepts": "Concepts only",
}
"""An image's recipe (docs/algorithm.md §17): the job's own settings, or a preset by its key,
with the labels users see (``presets`` checks that they are its presets' keys and labels)."""

IMAGE_SLOTS: tuple[str, ...] = ("image", "image_2", "image_3", "image_4")
"""The guidance image slots; slot ``s`` has the parameters ``s_weight`` and ``s_recipe``."""

INFOTEXT_PREFIX = "FlexDiffuse"

DECIMALS = 6
"""Float parameters are rounded to this many decimal places when validated."""


@dataclass(frozen=True)
class ParamSpec:
    """How one parameter is shown, bounded and named outside Python.

    ``kind`` is ``"float"``, ``"choice"``, ``"bool"`` or ``"text"``; ``minimum``/``maximum``
    bound floats, ``choices`` maps stored values to labels for ``"choice"``, ``placeholder``
    is the example shown in an empty text box. ``omit_default`` leaves the parameter out of
    infotext while it has its default (an "off" state: missing reads back as the default).
    ``default`` and ``engine`` (whether :class:`GuidanceParams` owns it) are filled in from
    the field that carries the spec.
    """

    name: str
    label: str
    infotext: str
    info: str
    kind: Literal["float", "choice", "bool", "text"]
    minimum: float | None = None
    maximum: float | None = None
    step: float = 0.01
    choices: Mapping[str, str] | None = None
    placeholder: str = ""
    omit_default: bool = False
    default: Any = None
    engine: bool = False


def _param(default: Any, *, infotext: str, **spec: Any) -> Any:
    # Name, default and owner are filled in once the classes exist (see PARAM_SPECS).
    spec = ParamSpec(name="", infotext=f"{INFOTEXT_PREFIX} {infotext}", **spec)
    return field(default=default, metadata={"spec": spec})


def _image_weight(number: int) -> Any:
    return _param(
        1.0,
        label=f"Image {number} weight",
        infotext="image weight" if number == 1 else f"image {number} weight",
        info="Scales how far prompt tokens move toward this image's tokens. 0 = unused.",
        kind="float",
        minimum=0.0,
        maximum=2.0,
        omit_default=True,
    )


def _image_recipe(number: int) -> Any:
    return _param(
        JOB_RECIPE,
        label=f"Image {number} recipe" if number > 1 else "Image recipe",
        infotext="image recipe" if number == 1 else f"image {number} recipe",
        info="What this image gives: the job's settings, or a preset's (say Style only).",
        kind="choice",
        choices=RECIPE_LABELS,
        omit_default=True,
    )


class _Validated:
    """Validation and copying shared by both parameter classes."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            spec = f.metadata.get("spec")
            if spec is not None:
                value = _coerce(SPECS_BY_NAME[f.name], getattr(self, f.name))
                object.__setattr__(self, f.name, value)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied and validated."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class GuidanceParams(_Validated):
    """What the engine needs to move prompt tokens (docs/algorithm.md §3-§5, §7).

    Construct with keyword arguments; invalid values raise :class:`ValueError` naming the field
    and its allowed range. ``GuidanceParams()`` has the original UI's defaults.
    """

    strength: float = _param(
        1.0,
        label="Image strength",
        infotext="strength",
        info="More or less image in one move: scales every weight, the cap and concepts. 0 = none.",
        kind="float",
        minimum=0.0,
        maximum=2.0,
        omit_default=True,
    )
    threshold_mult: float = _param(
        0.25,
        label="Threshold multiplier",
        infotext="threshold",
        info="Weight of every prompt token whose alignment reaches the threshold floor.",
        kind="float",
        minimum=-1.0,
        maximum=1.0,
    )
    threshold_floor: float = _param(
        0.75,
        label="Threshold floor",
        infotext="threshold floor",
        info="Alignment a prompt token needs for the threshold multiplier (unless automatic).",
        kind="float",
        minimum=0.0,
        maximum=1.0,
    )
    auto_floor: bool = _param(
        False,
        label="Automatic threshold floor",
        infotext="auto floor",
        info="Floor = the prompt's mean alignment with the image, per chunk (the original's rule).",
        kind="bool",
        omit_default=True,
    )
    clustered: float = _param(
        0.15,
        label="Clustered",
        infotext="clustered",
        info="Weight at the best-aligned prompt tokens, fading to 0 between them.",
        kind="float",
        minimum=-0.5,
        maximum=0.5,
    )
    linear: float = _param(
        0.5,
        label="Linear",
        infotext="linear",
        info="Weight rising from 0 at the first prompt token to this at the last (style).",
        kind="float",
        minimum=-1.0,
        maximum=1.0,
    )
    max_guidance: float = _param(
        0.35,
        label="Max image guidance",
        infotext="max",
        info="Cap on every token's weight (Image strength scales it with the weights).",
        kind="float",
        minimum=0.0,
        maximum=1.0,
    )
    order: Order = _param(
        "fit",
        label="Mapping priority",
        infotext="priority",
        info="Optimal fit: best-aligned pairs choose first. Text order: earlier tokens first.",
        kind="choice",
        choices=ORDER_LABELS,
    )
    reuse: bool = _param(
        True,
        label="Reuse image tokens",
        infotext="reuse",
        info="Let several prompt tokens take the same image token. Off spreads them out.",
        kind="bool",
    )
    concept_threshold: float = _param(
        0.9,
        label="Concept threshold",
        infotext="concept threshold",
        info="How closely a prompt token must match a mapping concept to take its image token.",
        kind="float",
        minimum=0.0,
        maximum=1.0,
    )


@dataclass(frozen=True)
class JobParams(_Validated):
    """Everything a guided generation is set up with: the engine's parameters and the job's.

    ``guidance`` holds the engine's part; the other fields are read by the job (which images
    guide and how much, when in the run, the concepts prompt to encode). Parameters are read
    by name with :meth:`get` and changed by name with :meth:`replace`, whichever part owns them.
    """

    guidance: GuidanceParams = field(default_factory=GuidanceParams)
    concepts: str = _param(
        "",
        label="Mapping concepts",
        infotext="concepts",
        info="Words naming the image concepts to map; empty maps none. Encoded like the prompt.",
        kind="text",
        placeholder="e.g. dog, sunset",
        omit_default=True,
    )
    start: float = _param(
        0.0,
        label="Guidance start",
        infotext="start",
        info="Fraction of the sampling steps done before the image starts guiding.",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        omit_default=True,
    )
    end: float = _param(
        1.0,
        label="Guidance end",
        infotext="end",
        info="Fraction of the sampling steps after which the image stops guiding.",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        omit_default=True,
    )
    pooled: float = _param(
        0.0,
        label="Pooled image guidance (SDXL)",
        infotext="pooled",
        info="SDXL only: moves the prompt's pooled CLIP-G embedding toward the image's. 0 = off.",
        kind="float",
        minimum=0.0,
        maximum=1.0,
        omit_default=True,
    )
    image_weight: float = _image_weight(1)
    image_recipe: str = _image_recipe(1)
    image_2_weight: float = _image_weight(2)
    image_2_recipe: str = _image_recipe(2)
    image_3_weight: float = _image_weight(3)
    image_3_recipe: str = _image_recipe(3)
    image_4_weight: float = _image_weight(4)
    image_4_recipe: str = _image_recipe(4)
    negative_weight: float = _param(
        1.0,
        label="Negative image weight",
        infotext="negative weight",
        info="How far the negative prompt moves toward this image, to steer away from it.",
        kind="float",
        minimum=0.0,
        maximum=2.0,
        omit_default=True,
    )

    def __post_init__(self) -> None:
        if not isinstance(self.guidance, GuidanceParams):
            raise ValueError(f"guidance must be GuidanceParams, got {self.guidance!r}.")
        super().__post_init__()
        if self.start >= self.end:
            raise ValueError(
                f"start (Guidance start) must be below end (Guidance end), got {self.start:g} "
                f"and {self.end:g}: no step would be guided."
            )

    def get(self, name: str) -> Any:
        """The value of parameter ``name`` (see :data:`PARAM_SPECS`)."""
        owner = self.guidance if SPECS_BY_NAME[name].engine else self
        return getattr(owner, name)

    def replace(self, **changes: Any) -> JobParams:
        """A copy with parameters changed by name, validated (unknown names raise)."""
        unknown = sorted(set(changes) - set(SPECS_BY_NAME) - {"guidance"})
        if unknown:
            raise ValueError(f"Unknown parameter(s) {', '.join(map(repr, unknown))}.")
        engine = {
            k: v for k, v in changes.items() if k in SPECS_BY_NAME and SPECS_BY_NAME[k].engine
        }
        job = {k: v for k, v in changes.items() if k not in engine}
        guidance = job.pop("guidance", self.guidance)
        if engine:
            guidance = guidance.replace(**engine)
        return dataclasses.replace(self, guidance=guidance, **job)

    def to_infotext(self) -> dict[str, str]:
        """Infotext key -> value for every parameter, but those off at their default."""
        out = {}
        for spec in PARAM_SPECS:
            value = self.get(spec.name)
            if spec.omit_default and value == spec.default:
                continue
            out[spec.infotext] = format_value(spec, value)
        return out


def _specs(cls: type, engine: bool) -> tuple[ParamSpec, ...]:
    return tuple(
        dataclasses.replace(f.metadata["spec"], name=f.name, default=f.default, engine=engine)
        for f in dataclasses.fields(cls)
        if "spec" in f.metadata
    )


PARAM_SPECS: tuple[ParamSpec, ...] = (*_specs(GuidanceParams, True), *_specs(JobParams, False))
"""Specs of every parameter, the engine's first; the order the panel shows them in."""

SPECS_BY_NAME: dict[str, ParamSpec] = {s.name: s for s in PARAM_SPECS}


def check_value(name: str, value: Any) -> Any:
    """``value`` validated for parameter ``name`` alone, in the field's type.

    For a value met before its neighbours (an X/Y/Z axis, a pasted key): checks the range
    but not the rules between fields, which :class:`JobParams` checks.

    Raises:
        ValueError: naming the parameter and its allowed values.
    """
    return _coerce(SPECS_BY_NAME[name], value)


def format_value(spec: ParamSpec, value: Any) -> str:
    """The text form of ``value`` used in infotext and X/Y/Z labels."""
    if spec.kind == "bool":
        return "True" if value else "False"
    if spec.kind == "float":
        return repr(float(value))  # shortest text that reads back as the same float
    if spec.kind == "choice":
        assert spec.choices is not None
        return spec.choices[value]
    return str(value)


TRUE_WORDS = frozenset({"true", "on", "yes", "1"})
FALSE_WORDS = frozenset({"false", "off", "no", "0"})


def read_bool(value: Any) -> bool | None:
    """``value`` as a boolean (bools, 0/1, and true/false, on/off, yes/no, 1/0 text), or None.

    Every boolean FlexDiffuse reads (switches, infotext, API) goes through this one rule.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS | FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    return None


def _coerce(spec: ParamSpec, value: Any) -> Any:
    """Validate ``value`` for ``spec`` and return it in the field's type.

    Strings are accepted for every kind so infotext, the API and X/Y/Z can pass what they have.
    """
    if spec.kind == "float":
        return _coerce_float(spec, value)
    if spec.kind == "bool":
        return _coerce_bool(spec, value)
    if spec.kind == "choice":
        return _coerce_choice(spec, value)
    if not isinstance(value, str):
        raise ValueError(f"{spec.name} ({spec.label}) must be text, got {value!r}.")
    return value


def _coerce_float(spec: ParamSpec, value: Any) -> float:
    allowed = f"a number from {spec.minimum:g} to {spec.maximum:g}"
    if isinstance(value, bool):
        raise ValueError(f"{spec.name} ({spec.label}) must be {allowed}, got {value!r}.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{spec.name} ({spec.label}) must be {allowed}, got {value!r}.") from None
    assert spec.minimum is not None
    assert spec.maximum is not None
    if not math.isfinite(number) or not spec.minimum <= number <= spec.maximum:
        raise ValueError(f"{spec.name} ({spec.label}) must be {allowed}, got {value!r}.")
    # Finer values mean nothing to the guidance, and 1e-40 would be 0 in float32 but not in
    # the real-number reading of the algorithm (any weight > 0 takes a fully aligned token).
    return round(number, DECIMALS)


def _coerce_bool(spec: ParamSpec, value: Any) -> bool:
    result = read_bool(value)
    if result is None:
        raise ValueError(f"{spec.name} ({spec.label}) must be true or false, got {value!r}.")
    return result


def _coerce_choice(spec: ParamSpec, value: Any) -> str:
    assert spec.choices is not None
    if isinstance(value, str):
        text = value.strip()
        for key, label in spec.choices.items():
            if text.lower() in (key.lower(), label.lower()):
                return key
    allowed = ", ".join(f"{k!r} ({label})" for k, label in spec.choices.items())
    raise ValueError(f"{spec.name} ({spec.label}) must be one of {allowed}, got {value!r}.")
