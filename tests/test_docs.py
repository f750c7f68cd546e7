"""The README's promises that code can check: the test command and the model table."""

from __future__ import annotations

from pathlib import Path

from flexdiffuse.webui.families import TOWERS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_ci_runs_exactly_the_readme_test_command():
    command = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert f"```bash\n{command}\n```" in README


def test_readme_names_every_vision_tower_and_its_size():
    for tower in TOWERS:
        assert f"`{tower.default_model}`" in README
        assert tower.size in README
        assert tower.label in README
