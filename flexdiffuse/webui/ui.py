"""The FlexDiffuse panel of txt2img and img2img, generated from the parameter specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from modules.ui_components import InputAccordion

from ..params import PARAM_SPECS, GuidanceParams, ParamSpec, format_value
from .args import ARG_NAMES, IMAGE_INPUTS, IMAGE_SLOTS, describe_slot
from .infotext import PANEL_KEYS

GARBAGE_HINT = (
    "Image looks like garbage? Lower **Max image guidance** first, then use one method at a "
    "time (Linear or Threshold) and raise the **Threshold floor**."
)
MORE_IMAGES = "More images: their tokens join the first image's; a negative image"


@dataclass(frozen=True)
class Panel:
    """The panel's controls by argument name; ``inputs`` are the script's arguments in order."""

    controls: dict[str, Any]

    @property
    def inputs(self) -> list[Any]:
        """The controls in the script's argument order."""
        return [self.controls[name] for name in ARG_NAMES]

    @property
    def infotext_fields(self) -> list[tuple[Any, str]]:
        """(control, infotext key) pairs: pasting parameters restores every control."""
        return list(zip(self.inputs, PANEL_KEYS, strict=True))


Previewer = Callable[..., str]
"""Renders the mapping preview from the prompt and the panel's values (the script's args)."""


def build_panel(
    elem_id: Callable[[str], str],
    warning: str | None = None,
    prompt: Any = None,
    previewer: Previewer | None = None,
) -> Panel:
    """Create the panel inside the current gradio Blocks context.

    ``elem_id`` turns a control's name into a page-unique id (``Script.elem_id``).
    ``warning`` is shown at the top of the panel when set. With the tab's ``prompt`` textbox
    and a ``previewer``, a "Preview mapping" button shows what guidance does to the prompt.
    """
    builder = _Builder(elem_id)
    controls = builder.controls
    with InputAccordion(False, label="FlexDiffuse", elem_id=elem_id("enabled")) as enabled:
        controls["enabled"] = enabled
        if warning:
            gr.Markdown(warning)
        with gr.Row():
            with gr.Column():
                builder.image_input(IMAGE_SLOTS[0])
            with gr.Column():
                builder.specs("options")
        builder.specs("sliders", per_row=2)
        with gr.Accordion(MORE_IMAGES, open=False), gr.Tabs():
            for slot in IMAGE_INPUTS[1:]:
                with gr.Tab(describe_slot(slot).capitalize()):
                    builder.image_input(slot)
        if prompt is not None and previewer is not None:
            with gr.Row():
                button = gr.Button("Preview mapping", elem_id=elem_id("preview_button"))
            shown = gr.HTML(elem_id=elem_id("preview"))
        gr.Markdown(GARBAGE_HINT)
    for slot in IMAGE_INPUTS:
        # Dropping an image means "guide with this": switch FlexDiffuse on, as ControlNet does.
        controls[slot].upload(fn=lambda: True, inputs=None, outputs=[enabled], show_progress=False)
    panel = Panel(controls)
    if prompt is not None and previewer is not None:
        button.click(fn=previewer, inputs=[prompt, *panel.inputs], outputs=[shown])
    return panel


class _Builder:
    """Creates controls in the current layout context and files them by argument name."""

    def __init__(self, elem_id: Callable[[str], str]) -> None:
        self.elem_id = elem_id
        self.controls: dict[str, Any] = {}
        self.defaults = GuidanceParams()

    def image_input(self, slot: str) -> None:
        """An image input and the controls of its group (its weight)."""
        self.controls[slot] = gr.Image(
            label=describe_slot(slot).capitalize(),
            source="upload",
            type="pil",
            image_mode="RGBA",
            elem_id=self.elem_id(slot),
            height=240,
        )
        self.specs(slot)

    def specs(self, group: str, per_row: int = 1) -> None:
        """Controls for every spec of ``group``, ``per_row`` to a row."""
        specs = [spec for spec in PARAM_SPECS if spec.group == group]
        for start in range(0, len(specs), per_row):
            if per_row == 1:
                self._control(specs[start])
                continue
            with gr.Row():
                for spec in specs[start : start + per_row]:
                    self._control(spec)

    def _control(self, spec: ParamSpec) -> None:
        default = getattr(self.defaults, spec.name)
        common = {"label": spec.label, "info": spec.info, "elem_id": self.elem_id(spec.name)}
        if spec.kind == "float":
            control = gr.Slider(
                minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=default, **common
            )
        elif spec.kind == "choice":
            assert spec.choices is not None
            labels = list(spec.choices.values())
            control = gr.Radio(choices=labels, value=format_value(spec, default), **common)
        elif spec.kind == "bool":
            control = gr.Checkbox(value=default, **common)
        else:
            control = gr.Textbox(value=default, lines=1, placeholder=spec.placeholder, **common)
        self.controls[spec.name] = control
