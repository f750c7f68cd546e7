"""docs/algorithm.md, the algorithm reference the code cites, keeps up with the code.

Every parameter spec has a row in its parameter table (field name, label, default, range), and
the numbered sections the code cites exist under their titles.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest

from flexdiffuse import params as params_module
from flexdiffuse.params import PARAM_SPECS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8")

SECTION = re.compile(r"^## §(\d+) (.+)$", re.MULTILINE)
SECTIONS = {int(number): title for number, title in SECTION.findall(DOC)}

CITED_SECTIONS = {
    1: "Alignment",
    2: "Assignment",
    3: "Weights",
    4: "Tween",
    5: "Concepts",
    6: "Pure image guidance",
    7: "Parameters",
    8: "Numbers",
}
"""Section numbers the code cites, by title (the numbering of the original contract)."""

PARAMETERS_SECTION = 7


def section_text(number: int) -> str:
    """The text of section ``number``, up to the next second-level heading."""
    start = re.search(rf"^## §{number} .*$", DOC, re.MULTILINE)
    assert start, f"docs/algorithm.md has no section §{number}"
    following = re.search(r"^## ", DOC[start.end() :], re.MULTILINE)
    end = start.end() + following.start() if following else len(DOC)
    return DOC[start.end() : end]


def parameter_rows() -> dict[str, dict[str, str]]:
    """Each row of the parameter table as column name -> cell, by the field name it gives."""
    lines = [line.strip() for line in section_text(PARAMETERS_SECTION).splitlines()]
    table = [line for line in lines if line.startswith("|")]
    assert table, "docs/algorithm.md §7 has no parameter table"
    header = [cell.strip() for cell in table[0].strip("|").split("|")]
    rows = {}
    for line in table[2:]:
        row = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")), strict=True))
        name = re.fullmatch(r"`(\w+)`", row["field"])
        assert name, f"the first cell of a parameter row is the field name in backticks: {line}"
        assert name[1] not in rows, f"two rows for {name[1]}"
        rows[name[1]] = row
    return rows


def default_of(spec: Any) -> Any:
    """The parameter's default: from the spec if it has one, else from its dataclass field."""
    if hasattr(spec, "default"):
        return spec.default
    defaults = params_module.GuidanceParams()
    if hasattr(defaults, spec.name):
        return getattr(defaults, spec.name)
    for value in vars(params_module).values():  # fields moved to another parameter class
        if isinstance(value, type) and dataclasses.is_dataclass(value):
            for field in dataclasses.fields(value):
                if field.name == spec.name and field.default is not dataclasses.MISSING:
                    return field.default
    raise AssertionError(f"no default found for parameter {spec.name}")


def test_parameter_table_lists_exactly_the_parameters():
    assert sorted(parameter_rows()) == sorted(spec.name for spec in PARAM_SPECS)


@pytest.mark.parametrize("spec", PARAM_SPECS, ids=lambda spec: spec.name)
def test_parameter_row_gives_label_default_and_range(spec):
    row = parameter_rows().get(spec.name)
    assert row is not None, f"docs/algorithm.md §7 has no row for `{spec.name}`"
    assert row["label"] == spec.label, row
    default = default_of(spec)
    if spec.kind == "float":
        assert row["default"] == f"{default:g}", row
        assert row["range"] == f"{spec.minimum:g} .. {spec.maximum:g}", row
    elif spec.kind == "choice":
        assert row["default"] == f"`{default}` ({spec.choices[default]})", row
        choices = ", ".join(f"`{value}` ({label})" for value, label in spec.choices.items())
        assert row["range"] == choices, row
    elif spec.kind == "bool":
        assert row["default"] == f"`{default}`", row
        assert row["range"] == "`True`, `False`", row
    else:
        assert row["default"].startswith(f'`"{default}"`'), row


def test_sections_cited_by_the_code_keep_their_numbers():
    for number, title in CITED_SECTIONS.items():
        assert number in SECTIONS, f"docs/algorithm.md has no heading '## §{number} {title}'"
        assert SECTIONS[number].startswith(title), (number, SECTIONS[number])


def test_sections_are_numbered_in_order_without_gaps():
    numbers = [int(number) for number, _ in SECTION.findall(DOC)]
    assert numbers == list(range(1, len(numbers) + 1))


def test_image_tokens_have_their_own_section():
    assert re.search(r"^## Image tokens$", DOC, re.MULTILINE)
