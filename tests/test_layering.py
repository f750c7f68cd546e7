"""The layering the code relies on: the core knows no webui, only the host layer knows which.

ruff's TID251 (pyproject.toml) keeps ``modules`` out of everything but the host layer; this
checks what it cannot: the core imports neither gradio nor the webui glue, and gradio stays
in the two glue modules that build UI.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flexdiffuse"
GRADIO_ALLOWED = {"webui/ui.py", "webui/hosts/a1111.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved against the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level] if node.level else ()
            module = ".".join([*base, *([node.module] if node.module else [])])
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def sources(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


@pytest.mark.parametrize(
    "path", [p for p in sources(PACKAGE) if "webui" not in p.parts], ids=lambda p: p.name
)
def test_the_core_imports_no_webui(path):
    banned = ("modules", "gradio", "flexdiffuse.webui", "launch")
    found = [m for m in imported_modules(path) if m.split(".")[0] in banned or m.startswith(banned)]
    assert not found, f"{path.name} imports {found}: the core must work with torch alone"


@pytest.mark.parametrize("path", sources(PACKAGE / "webui"), ids=lambda p: p.name)
def test_gradio_stays_in_the_ui_modules(path):
    name = path.relative_to(PACKAGE).as_posix()
    if name in GRADIO_ALLOWED:
        return
    assert not any(m.split(".")[0] == "gradio" for m in imported_modules(path)), name


@pytest.mark.parametrize("path", sorted(GRADIO_ALLOWED), ids=str)
def test_no_gradio_component_is_subclassed(path):
    """gradio 4 (Forge) builds the page from each component's ``__init__`` parameters: a
    subclass that takes ``**kwargs`` reaches the page without its props (a dropdown without
    choices), and the whole page stops loading. Wrap components in functions instead."""
    tree = ast.parse((PACKAGE / path).read_text(encoding="utf-8"))
    subclasses = [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any("gr." in ast.unparse(base) or "gradio" in ast.unparse(base) for base in node.bases)
    ]
    assert not subclasses, f"{path} subclasses gradio components: {subclasses}"
