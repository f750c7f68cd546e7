"""Generation parameters ("infotext") written for a guided image and read back when pasted.

A guided image carries ``FlexDiffuse: True``, every :class:`~flexdiffuse.params.GuidanceParams`
field under its infotext key (``FlexDiffuse linear: 0.5``; parameters at an "off" default are
left out) and a short hash of each image given (``FlexDiffuse image 2: 1a2b3c4d5e``). A1111
quotes and unquotes values that need it. Nothing here imports A1111.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ..params import (
    INFOTEXT_PREFIX,
    PARAM_SPECS,
    SPECS_BY_NAME,
    GuidanceParams,
    check_value,
    format_value,
)
from .args import ARG_NAMES, IMAGE_INPUTS

logger = logging.getLogger(__name__)

ENABLED_KEY = INFOTEXT_PREFIX
"""Infotext key of the enable switch."""

IMAGE_HASH_LENGTH = 10


def image_key(slot: str) -> str:
    """Infotext key of the short hash of image input ``slot`` ("FlexDiffuse image 2")."""
    return f"{INFOTEXT_PREFIX} {slot.replace('_', ' ')}"


IMAGE_KEY = image_key(IMAGE_INPUTS[0])
"""Infotext key of the first guidance image's short hash."""


def _panel_key(name: str) -> str:
    if name == "enabled":
        return ENABLED_KEY
    if name in IMAGE_INPUTS:
        return image_key(name)
    return SPECS_BY_NAME[name].infotext


PANEL_KEYS: tuple[str, ...] = tuple(_panel_key(name) for name in ARG_NAMES)
"""Infotext key of each panel control, in the script's argument order."""


def generation_params(params: GuidanceParams, digests: dict[str, str]) -> dict[str, str]:
    """The infotext entries of a guided job; ``digests`` are the images' by input name."""
    hashes = {
        image_key(slot): digests[slot][:IMAGE_HASH_LENGTH]
        for slot in IMAGE_INPUTS
        if slot in digests
    }
    return {ENABLED_KEY: "True", **params.to_infotext(), **hashes}


def is_guided(infotext: MutableMapping[str, Any]) -> bool:
    """Whether parsed infotext comes from a FlexDiffuse-guided image."""
    return any(key in infotext for key in PANEL_KEYS)


def complete_pasted(infotext: MutableMapping[str, Any]) -> None:
    """Make pasted infotext set every panel control (A1111 leaves controls of absent keys).

    An unguided image switches FlexDiffuse off and leaves the other controls alone. A guided
    image sets every parameter: absent keys mean their default (an empty concepts prompt is
    not written) and a value that does not read back (edited by hand) is replaced by its
    default and logged.
    """
    if not is_guided(infotext):
        infotext[ENABLED_KEY] = "False"
        return
    infotext.setdefault(ENABLED_KEY, "True")
    defaults = GuidanceParams()
    for spec in PARAM_SPECS:
        default = format_value(spec, getattr(defaults, spec.name))
        value = infotext.setdefault(spec.infotext, default)
        try:
            check_value(spec.name, value)
        except ValueError as error:
            logger.warning("Pasted %s replaced by its default: %s", spec.infotext, error)
            infotext[spec.infotext] = default
