"""FlexDiffuse in the fake Forge hosts: Forge 2 and old Forge laid over the fake A1111.

The fixtures here are ``tests/webui``'s, with ``host_fake`` parametrized by the Forge
backends: every webui test in this folder runs once per fake Forge (``forge_host`` names it).
The job tests every host shares run from ``tests/webui`` (its ``every_host`` modules).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.webui.conftest import (  # noqa: F401 (fixtures)
    OVERLAYS,
    host_overlay,
    install_webui,
    tiny_towers,
    webui,
)


@pytest.fixture(params=sorted(OVERLAYS))
def forge_host(request, monkeypatch) -> Iterator[str]:
    """The fake A1111 turned into one Forge backend for this test: its name."""
    with host_overlay(request.param, monkeypatch) as host:
        yield host


@pytest.fixture
def host_fake(forge_host) -> str:
    """The fake host ``tests/webui``'s fixtures install FlexDiffuse in: this test's Forge."""
    return forge_host
