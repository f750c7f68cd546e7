"""The webuis FlexDiffuse runs in, and :func:`detect`, which picks the one it is in.

Detection probes features (what can be imported), never version strings. Only this package
and ``script.py`` import the webui's ``modules``.
"""

from __future__ import annotations

import importlib.util

from .base import PAD, Cond, Host, SettingSpec, StepConds

__all__ = ["PAD", "Cond", "Host", "SettingSpec", "StepConds", "detect"]

FORGE_UNSUPPORTED = (
    "FlexDiffuse does not support Stable Diffusion WebUI Forge and its forks yet: they replace "
    "the sampling code FlexDiffuse hooks, so guidance would silently do nothing. Use "
    "AUTOMATIC1111 WebUI 1.7 to 1.10, or disable FlexDiffuse."
)


def detect() -> Host:
    """The host FlexDiffuse is running in (call it from inside a webui)."""
    from .a1111 import A1111Host

    if importlib.util.find_spec("modules_forge") is not None:
        return A1111Host(name="WebUI Forge", unsupported=FORGE_UNSUPPORTED)
    return A1111Host()
