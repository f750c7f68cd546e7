"""The webuis FlexDiffuse runs in, and :func:`detect`, which picks the one it is in.

Detection probes features (what can be imported), never version strings: a Forge has
``modules_forge``; Forge 2 (WebUI Forge, Forge Neo, ersatzForge) has the ``backend``
package's memory manager, old Forge (Forge Classic, reForge) ``ldm_patched``'s. Only this
package and ``script.py`` import the webui's ``modules``. A new backend is one new
:class:`Host` implementation here and one probe in :func:`detect`.
"""

from __future__ import annotations

import importlib.util

from .base import (
    PAD,
    Cond,
    HookedJob,
    Host,
    JobSurface,
    PassConds,
    SamplingStep,
    SettingSpec,
)

__all__ = [
    "PAD",
    "Cond",
    "HookedJob",
    "Host",
    "JobSurface",
    "PassConds",
    "SamplingStep",
    "SettingSpec",
    "detect",
]

UNKNOWN_FORGE = (
    "FlexDiffuse does not recognise this Forge: it has neither Forge 2's backend/ nor old "
    "Forge's ldm_patched/, so FlexDiffuse cannot tell how it samples. Use WebUI Forge, Forge "
    "Neo, ersatzForge, Forge Classic, reForge or AUTOMATIC1111 WebUI, or disable FlexDiffuse."
)


FORK_NAMES = (("neo", "Forge Neo"), ("classic", "Forge Classic"), ("ersatz", "ersatzForge"))
"""Markers in ``modules_forge.forge_version.version`` and the fork they name. A host class
names the Forge it finds without a marker (``default_name``): Forge 2's is WebUI Forge, old
Forge's reForge (Forge Classic says "classic")."""


def detect() -> Host:
    """The host FlexDiffuse is running in (call it from inside a webui)."""
    from .a1111 import A1111Host

    if not _importable("modules_forge"):
        return A1111Host()
    if _importable("backend.memory_management"):
        from .forge2 import Forge2Host

        return Forge2Host(_forge_name(Forge2Host.default_name))
    if _importable("ldm_patched.modules.model_management"):
        from .oldforge import OldForgeHost

        return OldForgeHost(_forge_name(OldForgeHost.default_name))
    from .forge import ForgeHost

    return A1111Host(name=_forge_name(ForgeHost.default_name), unsupported=UNKNOWN_FORGE)


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package is missing, or has no spec
        return False


def _forge_name(default: str) -> str:
    """The fork's name for messages (cosmetic only: behaviour never depends on it)."""
    try:
        from modules_forge import forge_version

        version = str(forge_version.version).lower()
    except Exception:
        return default
    for marker, name in FORK_NAMES:
        if marker in version:
            return name
    return default
