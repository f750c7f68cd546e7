"""Generation parameters ("infotext") written for a guided image and read back when pasted.

A guided image carries ``FlexDiffuse: True``, the FlexDiffuse version, every parameter under
its infotext key (``FlexDiffuse linear: 0.5``; parameters at an "off" default are left out)
and a short hash of each image given (``FlexDiffuse image 2: 1a2b3c4d5e``). A job whose
settings guide nothing records them with ``FlexDiffuse: False`` and a note saying why. The
webui quotes and unquotes values that need it. Nothing here imports the webui.

Pasting reads these keys through one reader per control (:func:`paste_readers`): the webui
calls it with the parsed parameters, so nothing is written into them, and every control gets
a value of its own type (a checkbox gets a bool, never the text ``"False"``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from .. import __version__
from ..params import (
    INFOTEXT_PREFIX,
    PARAM_SPECS,
    JobParams,
    ParamSpec,
    check_value,
    format_value,
    read_bool,
)

logger = logging.getLogger(__name__)

ENABLED_KEY = INFOTEXT_PREFIX
"""Infotext key of the enable switch: ``True`` only for an image FlexDiffuse guided."""

NOTE_KEY = f"{INFOTEXT_PREFIX} note"
"""Infotext key of what FlexDiffuse has to say about the image (nothing guided, stopped...)."""

VERSION_KEY = f"{INFOTEXT_PREFIX} version"

IMAGE_HASH_LENGTH = 10


def image_key(name: str) -> str:
    """Infotext key of the short hash of image input ``name`` ("FlexDiffuse image 2")."""
    return f"{INFOTEXT_PREFIX} {name.replace('_', ' ')}"


def generation_params(
    params: JobParams, digests: Mapping[str, str], *, guided: bool = True, note: str = ""
) -> dict[str, str]:
    """The infotext entries of a job; ``digests`` are its images' by input name.

    ``guided`` False records the settings of a job that guides nothing, with ``note``.
    """
    hashes = {image_key(name): digest[:IMAGE_HASH_LENGTH] for name, digest in digests.items()}
    entries = {ENABLED_KEY: str(guided), VERSION_KEY: __version__, **params.to_infotext()}
    entries.update(hashes)
    if note:
        entries[NOTE_KEY] = note
    return entries


def is_flexdiffuse_infotext(infotext: Mapping[str, Any]) -> bool:
    """Whether parsed infotext holds FlexDiffuse settings (guided or not)."""
    return ENABLED_KEY in infotext or any(spec.infotext in infotext for spec in PARAM_SPECS)


PasteReader = Callable[[Mapping[str, Any]], Any]
"""Reads one control's value from parsed infotext; None leaves the control as it is."""


def read_enabled(infotext: Mapping[str, Any]) -> bool:
    """The enable switch for pasted parameters: on only for a FlexDiffuse-guided image.

    An unguided image (no FlexDiffuse keys) switches FlexDiffuse off.
    """
    return bool(read_bool(infotext.get(ENABLED_KEY, False)))


def param_reader(spec: ParamSpec) -> PasteReader:
    """The reader of one parameter's control for pasted parameters.

    With FlexDiffuse settings in the infotext, absent keys mean their default (parameters at
    an "off" default are not written) and a value that does not read back (edited by hand) is
    replaced by its default and logged. Without them the control is left alone.
    """

    def read(infotext: Mapping[str, Any]) -> Any:
        if not is_flexdiffuse_infotext(infotext):
            return None
        value = spec.default
        if spec.infotext in infotext:
            try:
                value = check_value(spec.name, infotext[spec.infotext])
            except ValueError as error:
                logger.warning("Pasted %s replaced by its default: %s", spec.infotext, error)
        return control_value(spec, value)

    read.__name__ = f"read_{spec.name}"
    return read


def control_value(spec: ParamSpec, value: Any) -> Any:
    """``value`` as the parameter's control holds it (a choice's label, a bool, a number)."""
    return format_value(spec, value) if spec.kind == "choice" else value


PASTE_READERS: dict[str, PasteReader] = {
    "enabled": read_enabled,
    **{spec.name: param_reader(spec) for spec in PARAM_SPECS},
}
"""The paste reader of each control by argument name (images cannot be pasted: a hash
does not give the image back, and the panel keeps the image it has)."""
