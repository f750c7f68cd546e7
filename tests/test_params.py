"""The parameters: the algorithm's defaults and ranges, validation, the engine/job split and
the infotext round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from flexdiffuse import PARAM_SPECS, GuidanceParams, JobParams, guide
from flexdiffuse.params import SPECS_BY_NAME, check_value, format_value
from flexdiffuse.webui.args import make_params
from flexdiffuse.webui.infotext import PASTE_READERS
from tests.helpers import GUIDANCE_VALUES, any_job_params, guidance_params


def pasted(infotext: dict[str, str]) -> JobParams:
    """The parameters a webui job gets from pasted infotext: each control's paste reader,
    then the panel's values read as a job's."""
    return make_params({spec.name: PASTE_READERS[spec.name](infotext) for spec in PARAM_SPECS})


SPEC_TABLE = {  # docs/algorithm.md §7
    "threshold_mult": (0.25, -1, 1),
    "threshold_floor": (0.75, 0, 1),
    "clustered": (0.15, -0.5, 0.5),
    "linear": (0.5, -1, 1),
    "max_guidance": (0.35, 0, 1),
    "concept_threshold": (0.9, 0, 1),
}


def test_defaults_and_ranges_follow_the_algorithm():
    params = JobParams()
    for name, (default, low, high) in SPEC_TABLE.items():
        assert params.get(name) == default == SPECS_BY_NAME[name].default
        assert (SPECS_BY_NAME[name].minimum, SPECS_BY_NAME[name].maximum) == (low, high)
    assert params.guidance.order == "fit"
    assert params.guidance.reuse is True
    assert params.concepts == ""


def test_the_engine_takes_only_engine_parameters():
    engine = {spec.name for spec in PARAM_SPECS if spec.engine}
    assert engine == set(GuidanceParams.__dataclass_fields__)
    assert "start" not in engine
    assert "image_weight" not in engine
    with pytest.raises(TypeError):
        GuidanceParams(start=0.9)
    text, image = torch.randn(77, 8), torch.randn(5, 8)
    with pytest.raises(TypeError, match=r"JobParams\.guidance"):
        guide(text, image, JobParams())


def test_job_parameters_are_read_and_changed_by_name():
    params = JobParams().replace(linear=0.2, start=0.3, image_2_weight=0)
    assert params.guidance == GuidanceParams(linear=0.2)
    assert (params.get("linear"), params.get("start"), params.image_2_weight) == (0.2, 0.3, 0)
    with pytest.raises(ValueError, match="'lineer'"):
        params.replace(lineer=1)


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
        ("pooled", 2, r"pooled \(Pooled image guidance \(SDXL\)\) must be a number from 0 to 1"),
    ],
)
def test_invalid_values_name_the_field_and_range(field, value, message):
    with pytest.raises(ValueError, match=message):
        JobParams().replace(**{field: value})


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


@given(guidance=guidance_params, concepts=st.text(max_size=40))
def test_infotext_round_trip(guidance, concepts):
    params = JobParams(guidance, concepts=concepts)
    written = params.to_infotext()
    assert pasted(written) == params
    assert ("FlexDiffuse concepts" in written) == bool(concepts)


def test_infotext_values_are_readable():
    written = JobParams().replace(order="text", reuse=False).to_infotext()
    assert written["FlexDiffuse priority"] == "Text order"
    assert written["FlexDiffuse reuse"] == "False"
    assert written["FlexDiffuse linear"] == "0.5"
    assert format_value(SPECS_BY_NAME["linear"], 1.0) == "1.0"


def test_missing_infotext_keys_take_defaults():
    expected = JobParams(GuidanceParams(linear=0.2))
    assert pasted({"FlexDiffuse linear": "0.2"}) == expected


@pytest.mark.parametrize(("start", "end"), [(0.5, 0.5), (0.8, 0.2)])
def test_the_guidance_window_must_hold_a_step(start, end):
    with pytest.raises(ValueError, match=r"start \(Guidance start\) must be below end"):
        JobParams(start=start, end=end)


def test_check_value_checks_one_field_alone():
    assert check_value("end", "0.0") == 0.0  # below the default start is for the caller
    with pytest.raises(ValueError, match="Guidance end"):
        check_value("end", 1.5)


@given(params=any_job_params)
def test_every_parameter_round_trips_through_infotext(params):
    assert pasted(params.to_infotext()) == params


def readme_parameter_table() -> str:
    rows = [
        "| parameter | default | range | what it does | infotext key |",
        "| --- | --- | --- | --- | --- |",
    ]
    for spec in PARAM_SPECS:
        default = format_value(spec, spec.default) or "(empty)"
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


def test_the_engine_property_tests_draw_every_engine_parameter():
    """A new engine parameter left out of the strategy would be tested at its default only."""
    assert set(GUIDANCE_VALUES) == {spec.name for spec in PARAM_SPECS if spec.engine}
