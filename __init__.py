"""ComfyUI's entry point: ComfyUI imports this file from ``custom_nodes/<folder>/``.

The A1111 family never imports it (it loads ``scripts/``), so installing the checkout there
changes nothing. ComfyUI imports it under a name made from its full path, so everything below
is imported relatively; the nodes are imported when ComfyUI asks for them, which keeps this
module importable without ComfyUI. ComfyUI reads ``comfy_entrypoint`` only when there is no
``NODE_CLASS_MAPPINGS``: this pack defines none (it uses the V3 node API).

A ComfyUI without the node API the pack is written for gets one log line naming the version
to install, and no entry point (so no traceback).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import logging

REQUIRED_COMFYUI = "0.33.0"
"""The oldest ComfyUI the pack is tested with (pyproject.toml's ``requires-comfyui``)."""

_log = logging.getLogger(__name__)


def missing_node_api() -> str | None:
    """What this ComfyUI lacks of the V3 node API the nodes use (None: nothing)."""
    try:
        io = importlib.import_module("comfy_api.v0_0_2").io
    except ImportError:
        return "the versioned V3 node API (comfy_api.v0_0_2)"
    if "search_aliases" not in {field.name for field in dataclasses.fields(io.Schema)}:
        return "search aliases in the V3 node schema"
    if "advanced" not in inspect.signature(io.Input.__init__).parameters:
        return "advanced inputs in the V3 node schema"
    return None


_MISSING = missing_node_api()

if _MISSING is None:

    async def comfy_entrypoint():
        """The node pack: FlexDiffuse Image Guidance, its Advanced node and the previews."""
        from .flexdiffuse.comfy.nodes import FlexDiffuseExtension

        return FlexDiffuseExtension()

    __all__ = ["comfy_entrypoint"]
else:
    _log.error(
        "FlexDiffuse needs ComfyUI %s or newer; this ComfyUI has no %s. Update ComfyUI (git "
        "pull in its folder, or ComfyUI-Manager's Update ComfyUI) and restart it. FlexDiffuse's "
        "nodes are not loaded.",
        REQUIRED_COMFYUI,
        _MISSING,
    )
    __all__ = []
