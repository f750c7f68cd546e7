"""The version, written once: in ``pyproject.toml``'s ``[project]`` table.

The Comfy Registry and ComfyUI read it there, and a checkout installed as a webui extension
or a ComfyUI node pack is not pip-installed, so the package reads the same line from the file
beside it. An installed wheel has no ``pyproject.toml`` beside it: it asks its own metadata.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"

# tomllib is Python 3.11+ and the webuis still run 3.10, so the [project] table's one line is
# read by pattern: the table runs from its header to the next header.
_PROJECT_TABLE = re.compile(r"^\[project\]\n(.*?)(?=^\[|\Z)", re.M | re.S)
_VERSION = re.compile(r'^version = "([^"]+)"$', re.M)


def read_version(pyproject: Path = PYPROJECT) -> str:
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return metadata.version("flexdiffuse")
    table = _PROJECT_TABLE.search(text)
    version = _VERSION.search(table.group(1)) if table else None
    if version is None:
        raise RuntimeError(f"{pyproject} names no version in its [project] table")
    return version.group(1)
