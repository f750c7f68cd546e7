"""The panel's saved references: a menu (with the host's refresh button) per image slot, and
a name, Overwrite and Save to save the panel's images as a reference (``references.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from .args import NO_REFERENCE, REFERENCE_INPUTS
from .hosts import Host
from .infotext import PasteReader
from .references import paste_note, paste_reader, reference_names

MENU_LABEL = "Saved reference"
MENU_HINT = "Guide with a saved reference's images instead of this image (no vision model loads)"
SAVE_FOLD = "Save as a reference"
SAVE_HINT = (
    "Saves the guidance images above (and the images of their saved references), encoded by "
    "the loaded checkpoint's vision models with their recipes, to "
    "models/FlexDiffuse/references: pick it in any image's menu, in the API or on an X/Y/Z "
    "axis. Weights are not saved: a reference takes its slot's weight."
)


def reference_choices(host: Host) -> list[str]:
    """A reference menu's choices: none, then every saved reference."""
    return [NO_REFERENCE, *reference_names(host)]


def reference_menu(host: Host, slot: str, elem_id: Callable[[str], str]) -> Any:
    """The saved-reference menu of guidance image ``slot``, with the host's refresh button."""
    name = REFERENCE_INPUTS[slot]
    with gr.Row(elem_classes=["flexdiffuse-reference-row"]):
        menu = gr.Dropdown(
            choices=reference_choices(host),
            value=NO_REFERENCE,
            label=MENU_LABEL,
            info=MENU_HINT,
            elem_id=elem_id(name),
            # A pasted reference missing here stays named, so the job says it is missing.
            allow_custom_value=True,
        )
        host.refresh_button(menu, lambda: reference_choices(host), elem_id(f"{name}_refresh"))
    # A saved UI default could name a reference deleted since: the webui warns at each start.
    menu.do_not_save_to_config = True
    return menu


@dataclass(frozen=True)
class SaveControls:
    """The Save fold's controls."""

    name: Any
    overwrite: Any
    button: Any
    status: Any


def save_controls(elem_id: Callable[[str], str]) -> SaveControls:
    """The Save fold: a name, Overwrite, the Save button and what it did."""
    with gr.Accordion(SAVE_FOLD, open=False):
        gr.Markdown(SAVE_HINT, elem_classes=["flexdiffuse-hint"])
        with gr.Row():
            name = gr.Textbox(
                label="Reference name",
                placeholder="e.g. watercolour board",
                elem_id=elem_id("reference_name"),
            )
            overwrite = gr.Checkbox(
                value=False, label="Overwrite", elem_id=elem_id("reference_overwrite")
            )
        button = gr.Button("Save reference", elem_id=elem_id("reference_save"))
        status = gr.Markdown("", elem_id=elem_id("reference_status"))
    for control in (name, overwrite):
        control.do_not_save_to_config = True  # a default name would overwrite by accident
    return SaveControls(name, overwrite, button, status)


Saver = Callable[..., str]
"""Saves the panel's images as a reference: name, Overwrite and the script's arguments in,
what happened out (``references.saver``)."""


def connect_save(
    host: Host, saver: Saver, controls: SaveControls, inputs: list[Any], menus: list[Any]
) -> None:
    """Save on click: ``inputs`` are the script's arguments; ``menus`` get the new list."""

    def save(name: str, overwrite: bool, *args: Any) -> list[Any]:
        message = saver(name, overwrite, *args)
        choices = reference_choices(host)
        return [message, *(gr.update(choices=choices) for _ in menus)]

    controls.button.click(
        fn=save,
        inputs=[controls.name, controls.overwrite, *inputs],
        outputs=[controls.status, *menus],
    )


def reference_paste_fields(
    host: Host, menus: dict[str, Any], note: Any
) -> list[tuple[Any, PasteReader]]:
    """(control, reader) pairs that paste each slot's reference and say what is missing."""
    fields: list[tuple[Any, PasteReader]] = [
        (menu, paste_reader(slot)) for slot, menu in menus.items()
    ]
    fields.append((note, paste_note(host)))
    return fields
