"""The FlexDiffuse panel of txt2img and img2img, generated from the parameter specs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from ..params import PARAM_SPECS, SPECS_BY_NAME, ParamSpec
from ..presets import CONCEPTS_PRESET, PRESET_FIELDS, PRESETS, find_preset
from .args import (
    ARG_NAMES,
    GUIDANCE_INPUTS,
    IMAGE_INPUTS,
    IMAGE_WEIGHTS,
    MASK_INPUTS,
    REFERENCE_INPUTS,
    describe_input,
)
from .hosts import Host
from .infotext import PASTE_READERS, PasteReader, control_value
from .mask_panel import MASK_HINT, MASK_NOTE, MASK_READERS, editor_picture
from .reference_panel import (
    Saver,
    connect_save,
    reference_menu,
    reference_paste_fields,
    save_controls,
)

GARBAGE_HINT = (
    "Image looks like garbage? Lower **Image strength** first, or start again from the "
    "**Style only** preset, which leaves the prompt's subject alone."
)
MORE_IMAGES = "More images: their tokens join the first image's; a negative image"
SDXL_ONLY = "SDXL only"

OPTIONS = ("reuse", "order", "auto_floor", "concepts")
"""Parameters shown beside the first image, in this order; the reuse switch comes before the
priority it governs."""

TOP = ("strength",)
"""Parameters shown beside the preset menu, at the top of the panel."""

PRESET_LABEL = "Preset"
PRESET_HINT = "Sets the sliders to a recipe from the original experiments; then move them freely."
EMPTY_CONCEPTS = "**Mapping concepts** is empty: name the parts of the image to map there."

SDXL_PARAMS = ("pooled",)
"""Parameters that act on SDXL checkpoints only, kept in their own fold."""

GRADIO_4 = int(gr.__version__.split(".")[0]) >= 4
UPLOAD_ONLY = {"sources": ["upload"]} if GRADIO_4 else {"source": "upload"}
"""Image inputs take uploads only (gradio 4, as on Forge 2 hosts, renamed the argument)."""

PRIORITY_HINT = "Used when 'Reuse image tokens' is off: which prompt tokens choose first."


@dataclass(frozen=True)
class Panel:
    """The panel's controls by argument name; ``inputs`` are the script's arguments in order."""

    controls: dict[str, Any]
    preset: Any = None
    reference_fields: list[tuple[Any, PasteReader]] = field(default_factory=list)

    @property
    def inputs(self) -> list[Any]:
        """The controls in the script's argument order."""
        return [self.controls[name] for name in ARG_NAMES]

    @property
    def infotext_fields(self) -> list[tuple[Any, PasteReader]]:
        """(control, reader) pairs: pasting parameters restores every control; the images'
        readers leave them as they are, but name them for "Send to" (see IMAGE_CARRIERS)."""
        readers = {**PASTE_READERS, **IMAGE_CARRIERS, **MASK_READERS}
        fields = [(self.controls[name], reader) for name, reader in readers.items()]
        return fields + self.reference_fields

    @property
    def paste_field_names(self) -> list[PasteReader]:
        """The fields "Send to" copies control to control: all but the masks' note, which
        its reader writes from the sent image's infotext (a copy would race it)."""
        notes = set(MASK_READERS.values())
        return [key for _, key in self.infotext_fields if key not in notes]


def _carried_image(name: str) -> PasteReader:
    def carried(infotext: Any) -> None:
        return None  # a hash does not give the image back: the control keeps its image

    carried.__name__ = f"carry_{name}"
    return carried


IMAGE_CARRIERS: dict[str, PasteReader] = {name: _carried_image(name) for name in IMAGE_INPUTS}
"""The image inputs' infotext fields. "Send to img2img" copies every field named in the
script's ``paste_field_names`` control to control, from the txt2img panel to the img2img one:
the images travel with the settings, as the webui sends its result image. A paste from PNG
Info reads the infotext alone, which holds no image: the controls keep what they have, and a
panel switched on without an image stops with FlexDiffuse's clear error."""


Previewer = Callable[..., str]
"""Renders the mapping preview from the prompt and the panel's values (the script's args)."""


def build_panel(
    host: Host,
    elem_id: Callable[[str], str],
    prompt: Any = None,
    previewer: Previewer | None = None,
    saver: Saver | None = None,
) -> Panel:
    """Create the panel inside the current gradio Blocks context.

    ``elem_id`` turns a control's name into a page-unique id (``Script.elem_id``). When the
    host cannot run guided jobs, the panel says why at its top. A preset menu at the top sets
    the sliders to a recipe (it is no argument of the script). With the tab's ``prompt``
    textbox and a ``previewer``, a "Preview mapping" button shows what guidance does. Each
    guidance image has a menu of saved references; with a ``saver``, a fold saves the panel's
    images as one.
    """
    builder = _Builder(elem_id, host)
    controls = builder.controls
    placed = {*TOP, *OPTIONS, *SDXL_PARAMS, *IMAGE_WEIGHTS.values(), *IMAGE_RECIPES.values()}
    with host.input_accordion(False, label="FlexDiffuse", elem_id=elem_id("enabled")) as enabled:
        controls["enabled"] = enabled
        if host.unsupported:
            gr.Markdown(f"**{host.unsupported}**")
        with gr.Row():
            preset = gr.Dropdown(
                choices=[p.label for p in PRESETS],
                value=None,
                label=PRESET_LABEL,
                info=PRESET_HINT,
                elem_id=elem_id("preset"),
            )
            # A1111 saves controls' values as UI defaults; a saved preset name would show a
            # recipe the sliders (restored on their own) may not hold.
            preset.do_not_save_to_config = True
            builder.specs(TOP)
        preset_note = gr.Markdown("", elem_id=elem_id("preset_note"))
        controls[MASK_NOTE] = gr.Markdown("", elem_id=elem_id(MASK_NOTE))
        with gr.Row():
            with gr.Column():
                builder.image_input(GUIDANCE_INPUTS[0])
            with gr.Column():
                builder.specs(OPTIONS)
        builder.specs([s.name for s in PARAM_SPECS if s.name not in placed], per_row=2)
        with gr.Accordion(SDXL_ONLY, open=False):
            builder.specs(SDXL_PARAMS)
        images_note = gr.Markdown(_images_note([True]), elem_id=elem_id("images_note"))
        reference_note = gr.Markdown("", elem_id=elem_id("reference_note"))
        with gr.Accordion(MORE_IMAGES, open=False), gr.Tabs():
            for name in IMAGE_INPUTS[1:]:
                with gr.Tab(describe_input(name).capitalize()):
                    builder.image_input(name)
        if saver is not None:
            save = save_controls(elem_id)
        if prompt is not None and previewer is not None:
            with gr.Row():
                button = gr.Button("Preview mapping", elem_id=elem_id("preview_button"))
            shown = gr.HTML(elem_id=elem_id("preview"))
        gr.Markdown(GARBAGE_HINT)
    images = [controls[name] for name in IMAGE_INPUTS]
    for name in GUIDANCE_INPUTS:
        # The mask editor holds a copy of its image to paint on (a new image clears it).
        controls[name].change(
            fn=editor_picture,
            inputs=[controls[name]],
            outputs=[controls[MASK_INPUTS[name]]],
            show_progress=False,
        )
    for image in images:
        # Dropping an image means "guide with this": switch FlexDiffuse on, as ControlNet does.
        image.upload(fn=lambda: True, inputs=None, outputs=[enabled], show_progress=False)
        image.change(
            fn=lambda *given: _images_note([g is not None for g in given]),
            inputs=images,
            outputs=[images_note],
            show_progress=False,
        )
    controls["reuse"].change(
        fn=lambda reuse: gr.update(interactive=not reuse),
        inputs=[controls["reuse"]],
        outputs=[controls["order"]],
        show_progress=False,
    )
    controls["auto_floor"].change(
        fn=lambda auto: gr.update(interactive=not auto),
        inputs=[controls["auto_floor"]],
        outputs=[controls["threshold_floor"]],
        show_progress=False,
    )
    # Instant and model-free: it only sets controls, so it skips the job queue.
    preset.change(
        fn=apply_preset,
        inputs=[preset, controls["concepts"]],
        outputs=[*(controls[name] for name in PRESET_FIELDS), preset_note],
        show_progress=False,
        queue=False,
    )
    menus = {slot: controls[name] for slot, name in REFERENCE_INPUTS.items()}
    panel = Panel(controls, preset, reference_paste_fields(host, menus, reference_note))
    if prompt is not None and previewer is not None:
        button.click(fn=previewer, inputs=[prompt, *panel.inputs], outputs=[shown])
    if saver is not None:
        connect_save(host, saver, save, panel.inputs, list(menus.values()))
    return panel


def apply_preset(label: str | None, concepts: str = "") -> list[Any]:
    """The preset menu's handler: the values of :data:`PRESET_FIELDS` and the note under the
    menu for preset ``label`` (no preset: nothing changes). ``concepts`` is the concepts
    prompt, which the "Concepts only" preset needs."""
    if not label:
        return [gr.update() for _ in PRESET_FIELDS] + [gr.update()]
    chosen = find_preset(label)
    values = [
        gr.update(value=control_value(SPECS_BY_NAME[name], chosen.values[name]))
        for name in PRESET_FIELDS
    ]
    note = f"**{chosen.label}**: {chosen.description}"
    if chosen.key == CONCEPTS_PRESET and not str(concepts or "").strip():
        note += f" {EMPTY_CONCEPTS}"
    return [*values, note]


def _images_note(given: list[bool]) -> str:
    """Which image inputs hold an image, so images in closed tabs are not forgotten."""
    held = [describe_input(name) for name, has in zip(IMAGE_INPUTS, given, strict=False) if has]
    if not any(given[1:]):
        return ""
    return "Images in use: " + ", ".join(held) + "."


IMAGE_RECIPES: dict[str, str] = {name: f"{name}_recipe" for name in GUIDANCE_INPUTS}
"""The recipe parameter of each guidance image input, shown beside its weight."""

MENU_FROM = 4
"""A choice of this many values or more is a menu (a dropdown); fewer are radio buttons."""


class _Builder:
    """Creates controls in the current layout context and files them by argument name."""

    def __init__(self, elem_id: Callable[[str], str], host: Host) -> None:
        self.elem_id = elem_id
        self.host = host
        self.controls: dict[str, Any] = {}

    def image_input(self, name: str) -> None:
        """An image input, and for a guidance image its saved-reference menu; the slider of
        its weight, and for a guidance image its recipe menu beside it and its mask editor."""
        self.controls[name] = gr.Image(
            label=describe_input(name).capitalize(),
            **UPLOAD_ONLY,
            type="pil",
            image_mode="RGBA",
            elem_id=self.elem_id(name),
            height=240,
        )
        if name in REFERENCE_INPUTS:
            reference = reference_menu(self.host, name, self.elem_id)
            self.controls[REFERENCE_INPUTS[name]] = reference
        if name not in IMAGE_RECIPES:
            self.specs([IMAGE_WEIGHTS[name]])
            return
        self.specs([IMAGE_WEIGHTS[name], IMAGE_RECIPES[name]], per_row=2)
        # In view, not in a closed fold: gradio 3's sketch tool breaks for good when its
        # picture arrives while it is hidden (a white canvas that records no strokes).
        mask, label = MASK_INPUTS[name], f"Mask of the {describe_input(name)}"
        self.controls[mask] = self.host.mask_editor(label, self.elem_id(mask), height=200)
        gr.Markdown(MASK_HINT, elem_classes=["flexdiffuse-hint"])

    def specs(self, names: tuple[str, ...] | list[str], per_row: int = 1) -> None:
        """Controls for the parameters ``names``, ``per_row`` to a row."""
        specs = [SPECS_BY_NAME[name] for name in names]
        for start in range(0, len(specs), per_row):
            if per_row == 1:
                self._control(specs[start])
                continue
            with gr.Row():
                for spec in specs[start : start + per_row]:
                    self._control(spec)

    def _control(self, spec: ParamSpec) -> None:
        info = PRIORITY_HINT if spec.name == "order" else spec.info
        common = {"label": spec.label, "info": info, "elem_id": self.elem_id(spec.name)}
        default = control_value(spec, spec.default)
        if spec.kind == "float":
            control = gr.Slider(
                minimum=spec.minimum, maximum=spec.maximum, step=spec.step, value=default, **common
            )
        elif spec.kind == "choice" and len(spec.choices or ()) >= MENU_FROM:
            control = gr.Dropdown(choices=list(spec.choices.values()), value=default, **common)
        elif spec.kind == "choice":
            assert spec.choices is not None
            interactive = not SPECS_BY_NAME["reuse"].default if spec.name == "order" else None
            control = gr.Radio(
                choices=list(spec.choices.values()),
                value=default,
                interactive=interactive,
                **common,
            )
        elif spec.kind == "bool":
            # Gradio draws a checkbox's info above the box, away from the words it explains:
            # the hint goes right after it instead, as its own line.
            hint = common.pop("info")
            control = gr.Checkbox(value=default, **common)
            gr.Markdown(
                hint,
                elem_id=self.elem_id(f"{spec.name}_hint"),
                elem_classes=["flexdiffuse-hint"],
            )
        else:
            control = gr.Textbox(value=default, lines=1, placeholder=spec.placeholder, **common)
        self.controls[spec.name] = control
