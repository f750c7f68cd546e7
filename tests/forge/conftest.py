"""FlexDiffuse in the fake Forge hosts: Forge 2 and old Forge laid over the fake A1111.

The ``webui`` fixture here is ``tests/webui``'s, with the host's overlay installed first
(``tests/fakehost_forge2``, ``tests/fakehost_oldforge``), and parametrized by host: every
test in this folder runs once per Forge backend. Modules the overlays add (``backend``,
``modules_forge``, ``ldm_patched``, ``modules.sd_models``) are removed after each test, so
the next one detects its own host.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.webui.conftest import (
    Webui,
    tiny_towers,  # noqa: F401
)
from tests.webui.conftest import install_webui as a1111_install_webui  # noqa: F401

TESTS = Path(__file__).resolve().parents[1]
OVERLAYS = {
    "forge2": TESTS / "fakehost_forge2" / "forge2_overlay.py",
    "oldforge": TESTS / "fakehost_oldforge" / "oldforge_overlay.py",
}
ADDED = ("backend", "modules_forge", "ldm_patched", "modules.sd_models")


def load_overlay(host: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"tests.overlay_{host}", OVERLAYS[host])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def forget_added_modules() -> None:
    for name in list(sys.modules):
        if any(name == added or name.startswith(f"{added}.") for added in ADDED):
            del sys.modules[name]


@pytest.fixture(params=sorted(OVERLAYS))
def forge_host(request, monkeypatch) -> Iterator[str]:
    """The fake A1111 turned into one Forge backend for this test: its name."""
    forget_added_modules()
    load_overlay(request.param).install(monkeypatch)
    yield request.param
    forget_added_modules()


@pytest.fixture
def install_webui(forge_host, a1111_install_webui) -> Callable[..., Webui]:  # noqa: F811
    """``tests/webui``'s installer, in the fake Forge host of this test."""
    return a1111_install_webui


@pytest.fixture
def webui(install_webui) -> Webui:
    """FlexDiffuse installed in a fresh fake Forge with an SD 1.x checkpoint loaded."""
    return install_webui()
