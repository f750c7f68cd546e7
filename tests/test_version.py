"""The package has one version: pyproject.toml's, which flexdiffuse.__version__ reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomllib
from setuptools.config.pyprojecttoml import read_configuration

import flexdiffuse
from flexdiffuse._version import read_version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_package_and_a_built_package_carry_pyprojects_version():
    written = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", written)
    assert flexdiffuse.__version__ == written
    assert read_configuration(PYPROJECT)["project"]["version"] == written


def test_no_other_file_of_the_package_writes_a_version():
    package = Path(flexdiffuse.__file__).parent
    for path in package.rglob("*.py"):
        assert not re.search(r'^__version__ = "', path.read_text(encoding="utf-8"), re.M), path


def test_only_the_project_tables_version_counts(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n\n[tool.other]\nversion = "9.9.9"\n')
    with pytest.raises(RuntimeError, match=r"names no version in its \[project\] table"):
        read_version(pyproject)
    pyproject.write_text('[tool.other]\nversion = "9.9.9"\n\n[project]\nversion = "1.2.3"\n')
    assert read_version(pyproject) == "1.2.3"
