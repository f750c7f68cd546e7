"""docs/algorithm.md, the algorithm reference the code cites, keeps up with the code.

Every parameter spec has a row in its parameter table (field name, label, default, range), and
the numbered sections the package's code cites (found in its source) exist under their titles.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flexdiffuse.params import PARAM_SPECS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "algorithm.md").read_text(encoding="utf-8")

SECTION = re.compile(r"^## §(\d+) (.+)$", re.MULTILINE)
SECTIONS = {int(number): title for number, title in SECTION.findall(DOC)}

CITATION = re.compile(r"§(\d+)(?:-§(\d+))?")
CODE = ROOT / "flexdiffuse"


def cited_sections() -> dict[int, list[str]]:
    """Each section number the package's code cites (``§3``, or each of a range ``§1-§5``),
    with the files citing it."""
    cited: dict[int, list[str]] = {}
    for file in sorted(CODE.rglob("*.py")):
        for first, last in CITATION.findall(file.read_text(encoding="utf-8")):
            for number in range(int(first), int(last or first) + 1):
                cited.setdefault(number, []).append(str(file.relative_to(ROOT)))
    return cited


SECTION_TITLES = {
    1: "Alignment",
    2: "Assignment",
    3: "Weights",
    4: "Tween",
    5: "Concepts",
    6: "Pure image guidance",
    7: "Parameters",
    8: "Numbers",
    9: "Chunks",
    10: "Several guidance images",
    11: "Negative image",
    12: "Step window",
    13: "SDXL and other checkpoint families",
    14: "Exact comparisons",
    15: "Automatic threshold floor",
    16: "Image strength",
    17: "A recipe per image",
    18: "A reference mask",
}
"""The title each section number stands for: code citing a number means this section, so a
renumbered or retitled section must be caught here."""

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


def test_parameter_table_lists_exactly_the_parameters():
    assert sorted(parameter_rows()) == sorted(spec.name for spec in PARAM_SPECS)


@pytest.mark.parametrize("spec", PARAM_SPECS, ids=lambda spec: spec.name)
def test_parameter_row_gives_label_default_and_range(spec):
    row = parameter_rows().get(spec.name)
    assert row is not None, f"docs/algorithm.md §7 has no row for `{spec.name}`"
    assert row["label"] == spec.label, row
    default = spec.default
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


def test_the_code_cites_sections():
    assert len(cited_sections()) >= 10, "the citation pattern no longer finds the code's citations"


def test_sections_cited_by_the_code_keep_their_numbers_and_titles():
    for number, files in cited_sections().items():
        assert number in SECTION_TITLES, f"{files} cite §{number}: add its title to SECTION_TITLES"
        title = SECTION_TITLES[number]
        assert number in SECTIONS, f"{files} cite §{number}, but docs/algorithm.md has no §{number}"
        assert SECTIONS[number].startswith(title), (number, SECTIONS[number], files)


def test_every_section_has_its_title():
    assert {number: SECTIONS[number][: len(title)] for number, title in SECTION_TITLES.items()} == (
        SECTION_TITLES
    )


def test_sections_are_numbered_in_order_without_gaps():
    numbers = [int(number) for number, _ in SECTION.findall(DOC)]
    assert numbers == list(range(1, len(numbers) + 1))


def test_image_tokens_have_their_own_section():
    assert re.search(r"^## Image tokens$", DOC, re.MULTILINE)
