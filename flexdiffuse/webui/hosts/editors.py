"""The image editor a host's gradio offers for painting a mask on a picture.

Chosen by what gradio's components accept, never by its version: gradio 3 (A1111 1.7-1.10,
Forge Classic, reForge) paints masks with ``gr.Image``'s sketch tool, as A1111's own inpaint
tab does; gradio 4 (WebUI Forge, Forge Neo) dropped the tool for ``gr.ImageEditor``. (Forge's
ForgeCanvas splits a picture and its strokes into two hidden text fields driven by its own
script; gradio's editor keeps them in one value, which "Send to" can copy.)
"""

from __future__ import annotations

import inspect
from typing import Any

MASK_BRUSH = "#ffffff"
"""The brush colour: white, as a mask image marks what may be taken."""


def has_sketch_tool() -> bool:
    """Whether gradio's image component paints masks itself (gradio 3's ``tool``)."""
    import gradio as gr

    return "tool" in inspect.signature(gr.Image.__init__).parameters


def mask_editor(label: str, elem_id: str, height: int) -> Any:
    """An image editor whose value carries the strokes painted on its picture."""
    import gradio as gr

    if has_sketch_tool():
        return gr.Image(
            label=label,
            source="upload",
            tool="sketch",
            type="pil",
            image_mode="RGBA",
            brush_color=MASK_BRUSH,
            interactive=True,
            elem_id=elem_id,
            height=height,
        )
    return gr.ImageEditor(
        label=label,
        sources=["upload"],
        type="pil",
        image_mode="RGBA",
        brush=gr.Brush(colors=[MASK_BRUSH], color_mode="fixed"),
        transforms=(),
        layers=False,
        format="png",  # the strokes' edges exactly (the default, WebP, is lossy)
        interactive=True,
        elem_id=elem_id,
        height=height,
    )
