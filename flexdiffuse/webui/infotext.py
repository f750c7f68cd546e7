"""Generation parameters ("infotext") written for a guided image and read back when pasted.

A guided image carries ``FlexDiffuse: True``, every :class:`~flexdiffuse.params.GuidanceParams`
field under its infotext key (``FlexDiffuse linear: 0.5``; an empty concepts prompt is left
out) and a short hash of the guidance image. A1111 quotes and unquotes values that need it.
Nothing here imports A1111.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

from ..params import INFOTEXT_PREFIX, PARAM_SPECS, GuidanceParams, format_value

logger = logging.getLogger(__name__)

ENABLED_KEY = INFOTEXT_PREFIX
"""Infotext key of the enable switch."""

IMAGE_KEY = f"{INFOTEXT_PREFIX} image"
"""Infotext key of the guidance image's short hash."""

IMAGE_HASH_LENGTH = 10

PANEL_KEYS: tuple[str, ...] = (ENABLED_KEY, IMAGE_KEY, *(spec.infotext for spec in PARAM_SPECS))
"""Infotext key of each panel control, in the script's argument order."""


def generation_params(params: GuidanceParams, image_digest: str) -> dict[str, str]:
    """The infotext entries of a guided job."""
    return {
        ENABLED_KEY: "True",
        **params.to_infotext(),
        IMAGE_KEY: image_digest[:IMAGE_HASH_LENGTH],
    }


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
            GuidanceParams(**{spec.name: value})
        except ValueError as error:
            logger.warning("Pasted %s replaced by its default: %s", spec.infotext, error)
            infotext[spec.infotext] = default
