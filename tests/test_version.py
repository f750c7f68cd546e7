"""The package has one version: flexdiffuse/__init__.py's, which pyproject.toml reads."""

from __future__ import annotations

import re
from pathlib import Path

import tomllib
from setuptools.config.pyprojecttoml import read_configuration

import flexdiffuse

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_pyproject_names_no_version_of_its_own():
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    assert "version" not in project, "the version belongs in flexdiffuse/__init__.py"
    assert "version" in project["dynamic"]


def test_a_built_package_carries_the_version_infotext_writes():
    built = read_configuration(PYPROJECT)["project"]["version"]
    assert built == flexdiffuse.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+", built)
