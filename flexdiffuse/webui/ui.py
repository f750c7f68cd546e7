"""The FlexDiffuse panel of txt2img and img2img, generated from the parameter specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from modules.ui_components import InputAccordion

from ..params import PARAM_SPECS, GuidanceParams, ParamSpec, format_value
from .infotext import PANEL_KEYS

GARBAGE_HINT = (
    "Image looks like garbage? Lower **Max image guidance** first, then use one method at a "
    "time (Linear or Threshold) and raise the **Threshold floor**."
)


@dataclass(frozen=True)
class Panel:
    """The panel's controls; ``inputs`` are the script's arguments in order."""

    enabled: Any
    image: Any
    params: dict[str, Any]

    @property
    def inputs(self) -> list[Any]:
        return [self.enabled, self.image, *self.params.values()]

    @property
    def infotext_fields(self) -> list[tuple[Any, str]]:
        """(control, infotext key) pairs: pasting parameters restores every control."""
        return list(zip(self.inputs, PANEL_KEYS, strict=True))


def build_panel(elem_id: Callable[[str], str], warning: str | None = None) -> Panel:
    """Create the panel inside the current gradio Blocks context.

    ``elem_id`` turns a control's name into a page-unique id (``Script.elem_id``).
    ``warning`` is shown at the top of the panel when set.
    """
    defaults = GuidanceParams()
    controls: dict[str, Any] = {}
    with InputAccordion(False, label="FlexDiffuse", elem_id=elem_id("enabled")) as enabled:
        if warning:
            gr.Markdown(warning)
        with gr.Row():
            image = gr.Image(
                label="Guidance image",
                source="upload",
                type="pil",
                image_mode="RGBA",
                elem_id=elem_id("image"),
                height=240,
            )
            with gr.Column():
                for spec in _specs("text", "choice", "bool"):
                    controls[spec.name] = _control(spec, defaults, elem_id)
        floats = _specs("float")
        for pair in range(0, len(floats), 2):
            with gr.Row():
                for spec in floats[pair : pair + 2]:
                    controls[spec.name] = _control(spec, defaults, elem_id)
        gr.Markdown(GARBAGE_HINT)
    # Dropping an image means "guide with this": switch FlexDiffuse on, as ControlNet does.
    image.upload(fn=lambda: True, inputs=None, outputs=[enabled], show_progress=False)
    ordered = {spec.name: controls[spec.name] for spec in PARAM_SPECS}
    return Panel(enabled, image, ordered)


def _specs(*kinds: str) -> list[ParamSpec]:
    return [spec for spec in PARAM_SPECS if spec.kind in kinds]


def _control(spec: ParamSpec, defaults: GuidanceParams, elem_id: Callable[[str], str]) -> Any:
    default = getattr(defaults, spec.name)
    common = {"label": spec.label, "info": spec.info, "elem_id": elem_id(spec.name)}
    if spec.kind == "float":
        return gr.Slider(
            minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=default, **common
        )
    if spec.kind == "choice":
        assert spec.choices is not None
        labels = list(spec.choices.values())
        return gr.Radio(choices=labels, value=format_value(spec, default), **common)
    if spec.kind == "bool":
        return gr.Checkbox(value=default, **common)
    return gr.Textbox(value=default, lines=1, placeholder=spec.placeholder, **common)
