"""GuidanceParams: the spec's defaults and ranges, validation and the infotext round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flexdiffuse import PARAM_SPECS, GuidanceParams
from flexdiffuse.params import DECIMALS, SPECS_BY_NAME, check_value, format_value
from tests.test_engine_oracle import guidance_params

SPEC_TABLE = {  # shared/spec/guidance.md section 7
    "threshold_mult": (0.25, -1, 1),
    "threshold_floor": (0.75, 0, 1),
    "clustered": (0.15, -0.5, 0.5),
    "linear": (0.5, -1, 1),
    "max_guidance": (0.35, 0, 1),
    "concept_threshold": (0.9, 0, 1),
}


def test_defaults_and_ranges_follow_the_spec():
    params = GuidanceParams()
    for name, (default, low, high) in SPEC_TABLE.items():
        assert getattr(params, name) == default
        assert (SPECS_BY_NAME[name].minimum, SPECS_BY_NAME[name].maximum) == (low, high)
    assert params.order == "fit"
    assert params.reuse is True
    assert params.concepts == ""


def test_every_spec_has_a_label_hint_and_unique_infotext_key():
    keys = [s.infotext for s in PARAM_SPECS]
    assert len(set(keys)) == len(keys)
    assert all(k.startswith("FlexDiffuse ") for k in keys)
    assert all(s.label and s.info for s in PARAM_SPECS)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("linear", 1.5, r"linear \(Linear\) must be a number from -1 to 1, got 1.5"),
        ("clustered", -0.51, "clustered .* from -0.5 to 0.5"),
        ("max_guidance", float("nan"), "max_guidance .* from 0 to 1"),
        ("threshold_floor", "high", "threshold_floor .* got 'high'"),
        ("concept_threshold", True, "concept_threshold"),
        ("order", "best", "order .* one of 'fit' .*'text'"),
        ("reuse", "maybe", "reuse .* true or false"),
        ("concepts", 5, "concepts .* must be text"),
    ],
)
def test_invalid_values_name_the_field_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        GuidanceParams(**{field: value})


def test_text_forms_are_accepted():
    params = GuidanceParams(linear="0.3", order="Text order", reuse="False")
    assert (params.linear, params.order, params.reuse) == (0.3, "text", False)
    assert GuidanceParams(order="optimal fit").order == "fit"


def test_replace_validates():
    with pytest.raises(ValueError, match="linear"):
        GuidanceParams().replace(linear=2)


def test_floats_are_rounded_to_a_meaningful_precision():
    assert GuidanceParams(linear=1e-132).linear == 0
    assert GuidanceParams(linear=0.1234567891).linear == 0.123457


@given(params=guidance_params, concepts=st.text(max_size=40))
def test_infotext_round_trip(params, concepts):
    params = params.replace(concepts=concepts)
    written = params.to_infotext()
    assert GuidanceParams.from_infotext(written) == params
    assert ("FlexDiffuse concepts" in written) == bool(concepts)


def test_infotext_values_are_readable():
    written = GuidanceParams(order="text", reuse=False).to_infotext()
    assert written["FlexDiffuse priority"] == "Text order"
    assert written["FlexDiffuse reuse"] == "False"
    assert written["FlexDiffuse linear"] == "0.5"
    assert format_value(SPECS_BY_NAME["linear"], 1.0) == "1.0"


def test_missing_infotext_keys_take_defaults():
    assert GuidanceParams.from_infotext({"FlexDiffuse linear": "0.2"}) == GuidanceParams(linear=0.2)


def spec_values(spec):
    """Every valid value of one parameter, read from its spec alone."""
    if spec.kind == "float":
        return st.floats(spec.minimum, spec.maximum, allow_nan=False)
    if spec.kind == "choice":
        return st.sampled_from(list(spec.choices))
    if spec.kind == "bool":
        return st.booleans()
    return st.text(max_size=40)


any_params = (
    st.fixed_dictionaries({spec.name: spec_values(spec) for spec in PARAM_SPECS})
    .filter(lambda values: round(values["start"], DECIMALS) < round(values["end"], DECIMALS))
    .map(lambda values: GuidanceParams(**values))
)


@pytest.mark.parametrize(("start", "end"), [(0.5, 0.5), (0.8, 0.2)])
def test_the_guidance_window_must_hold_a_step(start, end):
    with pytest.raises(ValueError, match=r"start \(Guidance start\) must be below end"):
        GuidanceParams(start=start, end=end)


def test_check_value_checks_one_field_alone():
    assert check_value("end", "0.0") == 0.0  # below the default start is for the caller
    with pytest.raises(ValueError, match="Guidance end"):
        check_value("end", 1.5)


@given(params=any_params)
def test_every_parameter_round_trips_through_infotext(params):
    assert GuidanceParams.from_infotext(params.to_infotext()) == params


def readme_parameter_table() -> str:
    defaults = GuidanceParams()
    rows = [
        "| parameter | default | range | what it does | infotext key |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in PARAM_SPECS:
        default = format_value(spec, getattr(defaults, spec.name)) or "(empty)"
        if spec.kind == "float":
            allowed = f"{spec.minimum:g} – {spec.maximum:g}"
        elif spec.kind == "choice":
            allowed = ", ".join(spec.choices.values())
        elif spec.kind == "bool":
            allowed = "True, False"
        else:
            allowed = "text"
        rows.append(f"| {spec.label} | {default} | {allowed} | {spec.info} | `{spec.infotext}` |")
    return "\n".join(rows)


def test_readme_lists_every_parameter():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    table = readme.split("<!-- PARAMETERS -->\n", 1)[1].split("\n<!-- /PARAMETERS -->", 1)[0]
    assert table == readme_parameter_table(), "README's parameter table is stale; use:\n" + (
        readme_parameter_table()
    )
