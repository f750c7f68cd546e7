"""The layering the code relies on: the core knows no host, each host's glue only its own.

ruff's TID251 (pyproject.toml, flexdiffuse/comfy/ruff.toml) keeps ``modules`` out of
everything but the webui host layer and ComfyUI's modules out of everything but the node pack;
this checks what it cannot: the core imports neither gradio nor either host's glue, neither
glue imports the other, and gradio stays in the two glue modules that build UI.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "flexdiffuse"
GRADIO_ALLOWED = {"webui/ui.py", "webui/reference_panel.py", "webui/hosts/a1111.py"}


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


WEBUI = ("modules", "gradio", "flexdiffuse.webui", "launch")
COMFYUI = (
    "comfy",
    "comfy_api",
    "comfy_extras",
    "comfy_execution",
    "folder_paths",
    "nodes",
    "node_helpers",
    "server",
    "latent_preview",
    "flexdiffuse.comfy",
)
"""What each host's glue imports: the webui's modules, ComfyUI's top-level modules."""


def banned_imports(path: Path, banned: tuple[str, ...]) -> list[str]:
    return [
        m
        for m in imported_modules(path)
        if m.split(".")[0] in banned or m.startswith(tuple(f"{b}." for b in banned)) or m in banned
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in sources(PACKAGE) if not {"webui", "comfy"} & set(p.parts)],
    ids=lambda p: p.name,
)
def test_the_core_imports_no_host(path):
    found = banned_imports(path, WEBUI + COMFYUI)
    assert not found, f"{path.name} imports {found}: the core must work with torch alone"


@pytest.mark.parametrize("path", sources(PACKAGE / "webui"), ids=lambda p: p.name)
def test_the_webui_glue_imports_no_comfyui(path):
    found = banned_imports(path, COMFYUI)
    assert not found, f"{path.name} imports {found}: the webui glue must not need ComfyUI"


@pytest.mark.parametrize(
    "path", [*sources(PACKAGE / "comfy"), PACKAGE.parent / "__init__.py"], ids=lambda p: p.name
)
def test_the_comfyui_pack_imports_no_webui(path):
    found = banned_imports(path, WEBUI)
    assert not found, f"{path.name} imports {found}: the node pack must not need a webui"


def test_the_root_init_only_reaches_the_node_pack():
    """ComfyUI imports the checkout's __init__.py; the webuis never do. Besides the node pack
    it uses only the standard library (to probe ComfyUI's node API and log what is missing)."""
    found = imported_modules(PACKAGE.parent / "__init__.py")
    stdlib = sys.stdlib_module_names
    assert all(m.startswith("flexdiffuse.comfy") or m.split(".")[0] in stdlib for m in found), found


@pytest.mark.parametrize("name", ["guiding.py", "mapping.py", "referencing.py", "__init__.py"])
def test_the_packs_duck_typed_modules_import_no_comfyui(name):
    """Only the node modules (nodes.py, reference_nodes.py, inputs.py) import ComfyUI; the
    rest reads its objects."""
    found = banned_imports(PACKAGE / "comfy" / name, COMFYUI[:-1])
    assert not found, f"{name} imports {found}"


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
