"""Fake ``comfy_api.v0_0_2``: the versioned API custom nodes import; as in ComfyUI, it
re-exports ``comfy_api.latest``'s extension class and its ``io`` and ``ui`` modules."""

from comfy_api.latest import ComfyExtension, io, ui

__all__ = ["ComfyExtension", "io", "ui"]
