"""The README's promises that code can check: the test command, the model table, the API."""

from __future__ import annotations

from pathlib import Path

from flexdiffuse.params import PARAM_SPECS
from flexdiffuse.webui.args import ARG_NAMES, IMAGE_INPUTS
from flexdiffuse.webui.families import TOWERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in README


def test_readme_names_every_vision_tower_and_its_size():
    for tower in TOWERS:
        assert f"`{tower.default_source}`" in README
        assert tower.size in README
        assert tower.label in README


def readme_block(name: str) -> str:
    return README.split(f"<!-- {name} -->\n", 1)[1].split(f"\n<!-- /{name} -->", 1)[0]


def test_readme_lists_the_api_names_from_the_code():
    images = ", ".join(f"`{name}`" for name in IMAGE_INPUTS)
    rest = ", ".join(f"`{name}`" for name in ["enabled", *(s.name for s in PARAM_SPECS)])
    assert readme_block("API-NAMES") == f"{images} (images), {rest}"


def test_readme_gives_the_positional_order_from_the_code():
    assert readme_block("API-POSITIONAL") == f"`[{', '.join(ARG_NAMES)}]`"
