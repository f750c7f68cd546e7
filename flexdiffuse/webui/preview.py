"""The panel's "Preview mapping": what guidance does to the current prompt, without generating.

For every prompt token it shows the image token it maps to, their alignment, how far the token
moves and whether a mapping concept decided it; beside the table, each guidance image with its
mapped patches lit (hovering a row outlines its patch, see ``javascript/flexdiffuse.js``).
"""

from __future__ import annotations

import base64
import html
import io
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch

from ..engine import PURE_IMAGE_WARNING
from ..guides import is_empty_prompt
from ..images import GuidanceImage, prepare_image
from ..params import JOB_RECIPE, RECIPE_LABELS, GuidanceParams
from ..preview import (
    PositionReport,
    chunk_rows,
    dim_masked,
    effect_text,
    explain_part,
    heat_overlay,
    image_place,
    patch_heat,
    prompt_number,
    summary_text,
    token_label,
)
from .args import NEGATIVE_INPUT, ScriptArgs, parse_script_args
from .conds import token_states
from .errors import FlexDiffuseError
from .families import detect_family
from .hosts import PAD
from .prepare import checkpoint_inputs, encode_guides
from .references import guidance_pictures, read_references
from .runtime import Runtime

DISPLAY_SIZE = 224


def previewer(runtime: Runtime) -> Callable[..., str]:
    """The panel's preview callback: the prompt and the script's arguments in, HTML out."""

    def preview(prompt: str, *args: Any) -> str:
        return preview_from_panel(runtime, prompt, *args)

    return preview


def preview_from_panel(runtime: Runtime, prompt: str, *args: Any) -> str:
    """The preview for the panel's values (the script's arguments), whether enabled or not."""
    try:
        script_args = parse_script_args([True, *args[1:]])
        script_args = read_references(script_args, runtime.host, {})
    except FlexDiffuseError as error:
        return notice(str(error), error=True)
    if not script_args.images and not script_args.references:
        return notice(
            "Drop a guidance image into the panel (or pick a saved reference) to preview its "
            "mapping."
        )
    return preview_html(runtime, prompt, script_args)


def preview_html(runtime: Runtime, prompt: str, args: ScriptArgs) -> str:
    """The preview of ``prompt`` guided as ``args`` asks, as HTML (errors included).

    It shows the text the checkpoint encodes first (see ``Host.first_scheduled_text``). The
    webui's job queue is held only while the checkpoint encodes the prompt, never while a
    vision tower loads or encodes, so generations are not held up.
    """
    host = runtime.host
    # The preview shows the prompt's guidance only: the negative image is not encoded.
    args = replace(args, images={k: v for k, v in args.images.items() if k != NEGATIVE_INPUT})
    timer = _Timer()
    try:
        with host.exclusive():
            detect_family(host.load_model())  # a clear error when no checkpoint loads
            prompt = host.first_scheduled_text(prompt)
            tokens = token_states(host.encode_prompt(prompt))
            labels = host.prompt_token_labels(prompt)
            inputs = checkpoint_inputs(args, tokens.shape[-1], runtime)
        timer.lap("prompt")
        guide = encode_guides(args, inputs, runtime).prompt
        timer.lap("images")
    except FlexDiffuseError as error:
        return notice(str(error), error=True)
    if guide is None:
        return notice(
            "Nothing to preview: the prompt is guided only by guidance images of weight above "
            "0 (a negative image guides the negative prompt)."
        )
    # What the guide does to an empty prompt: the image replaces it (the core's one rule).
    pure = is_empty_prompt(tokens, inputs.empty_prompt)
    images = guidance_pictures(args)
    sections = (
        [f'<p class="flexdiffuse-error">{html.escape(PURE_IMAGE_WARNING)}</p>'] if pure else []
    )
    for number, part in enumerate(guide.parts):
        states = tokens[..., part.channel_start : part.channel_stop]
        reports = explain_part(states, part, guide.params, pure=pure)
        title = f"Vision tower {number + 1} of {len(guide.parts)}" if number else ""
        note = settings_note(guide.params, reports)
        count = part.per_image * len(images)  # the full numbering: masked tokens counted
        sections.append(
            render_mapping(reports, labels, images, count, title, note, keeps=part.keeps)
        )
    timer.lap("table")
    footer = f'<p class="flexdiffuse-note">{html.escape(timer.summary())}</p>'
    return f'<div class="flexdiffuse-preview">{"".join(sections)}{footer}</div>'


class _Timer:
    """Where a preview's time goes, for its footer."""

    def __init__(self) -> None:
        self.started = self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, (now - self.last) * 1000))
        self.last = now

    def summary(self) -> str:
        total = (time.perf_counter() - self.started) * 1000
        parts = ", ".join(f"{name} {ms:.0f} ms" for name, ms in self.laps)
        return f"Computed in {total:.0f} ms ({parts})."


def notice(text: str, *, error: bool = False) -> str:
    """A one-line message in the preview area."""
    kind = "flexdiffuse-error" if error else "flexdiffuse-note"
    return f'<div class="flexdiffuse-preview"><p class="{kind}">{html.escape(text)}</p></div>'


def settings_note(params: GuidanceParams, reports: list[PositionReport]) -> str:
    """What the preview says about settings that shape every weight: the image strength, and
    the threshold floor each chunk chose when it is automatic (docs/algorithm.md §15, §16)."""
    parts = []
    if params.strength != 1:
        parts.append(f"Weights include the image strength ({params.strength:g}).")
    if params.auto_floor:
        floors = {report.chunk: report.floor for report in reports}
        chosen = ", ".join(
            f"{floors[chunk]:.4f}" + (f" (chunk {chunk + 1})" if len(floors) > 1 else "")
            for chunk in sorted(floors)
        )
        parts.append(f"Automatic threshold floor (the mean alignment): {chosen}.")
    return " ".join(parts)


def render_mapping(
    reports: list[PositionReport],
    labels: list[list[str]] | None,
    images: list[GuidanceImage],
    token_count: int,
    title: str = "",
    note: str = "",
    *,
    keeps: Sequence[torch.Tensor | None] | None = None,
) -> str:
    """One tower's table of prompt positions and its images with the mapped patches lit.

    ``token_count`` is the number of image tokens of all ``images`` together; each image has
    a class token, then a square grid of patches. ``note`` is added to the summary (see
    :func:`settings_note`). ``keeps`` are the images' masks' token keeps (None: unmasked):
    the patches a mask leaves out are dimmed.
    """
    per_image = token_count // max(1, len(images))
    grid = math.isqrt(per_image - 1)
    rows, tokens = [], []
    # Which recipe moved a token is news only where an image has a recipe of its own.
    recipes = bool({report.recipe for report in reports} - {"", RECIPE_LABELS[JOB_RECIPE]})
    for shown, padding in chunk_rows(reports, labels, PAD):
        rows += [_row(report, labels, per_image, grid, recipes) for report in shown]
        tokens += shown
        if padding:
            rows.append(_padding_row(padding))
    heading = f"<h4>{html.escape(title)}</h4>" if title else ""
    summary = (
        f"{summary_text(reports)} Lit patches: what the prompt's own tokens (the rows before "
        "the padding) take."
    )
    if note:
        summary = f"{summary} {note}"
    keeps = keeps or [None] * len(images)
    pictures = "".join(
        _picture(image, number, patch_heat(tokens, number, per_image, grid), grid, keep)
        for number, (image, keep) in enumerate(zip(images, keeps, strict=True))
    )
    return (
        f'<div class="flexdiffuse-section">{heading}<p class="flexdiffuse-note">{summary}</p>'
        f'<div class="flexdiffuse-images">{pictures}</div>'
        '<table class="flexdiffuse-table"><thead><tr><th>#</th><th>token</th>'
        "<th>alignment</th><th>image token</th><th>weight</th><th>effect</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def _padding_row(padding: list[PositionReport]) -> str:
    """One row for a chunk's padding: the encoder's states there carry the prompt too."""
    first, last = (prompt_number(report) for report in (padding[0], padding[-1]))
    moved = [report for report in padding if report.moved]
    mean = sum(report.weight for report in moved) / len(moved) if moved else 0.0
    effect = f"{len(moved)} of {len(padding)} move (mean weight {mean:+.2f})"
    return (
        f'<tr class="flexdiffuse-padding"><td>{first}\u2013{last}</td><td>(padding)</td>'
        f"<td></td><td></td><td></td><td>{effect}</td></tr>"
    )


def _row(
    report: PositionReport,
    labels: list[list[str]] | None,
    per_image: int,
    grid: int,
    recipes: bool = False,
) -> str:
    label = token_label(labels, report)
    number = prompt_number(report)
    token = html.escape(label if label is not None else "")
    where, data = "\u2014", ""
    place = image_place(report, per_image, grid)
    if place is not None:
        image, row, column = place
        data = f' data-flexdiffuse-image="{image}"'
        if row < 0:
            where = f"image {image + 1}, class"
        else:
            where = f"image {image + 1}, patch {row + 1},{column + 1}"
            data += f' data-flexdiffuse-row="{row}" data-flexdiffuse-col="{column}"'
            data += f' data-flexdiffuse-grid="{grid}"'
        if recipes and report.recipe:
            where += f" ({html.escape(report.recipe)})"
    bar = f'<span class="flexdiffuse-bar" style="width:{report.alignment * 4:.2f}em"></span>'
    shown = report.image_token >= 0 and not report.pure
    alignment = f"{bar}{report.alignment:.2f}" if shown else "\u2014"
    moved = " flexdiffuse-moved" if report.moved else ""
    return (
        f'<tr class="flexdiffuse-position{moved}"{data}><td>{number}</td><td>{token}</td>'
        f"<td>{alignment}</td><td>{where}</td><td>{report.weight:+.2f}</td>"
        f"<td>{effect_text(report)}</td></tr>"
    )


def _picture(
    image: GuidanceImage, number: int, heat: torch.Tensor, grid: int, keep: torch.Tensor | None
) -> str:
    square = heat_overlay(dim_masked(prepare_image(image.pixels, DISPLAY_SIZE), keep), heat)
    buffer = io.BytesIO()
    square.save(buffer, "PNG")
    data = base64.b64encode(buffer.getvalue()).decode()
    return (
        f'<figure class="flexdiffuse-image" data-image="{number}" data-grid="{grid}">'
        f'<div class="flexdiffuse-frame"><img src="data:image/png;base64,{data}" '
        f'alt="guidance image {number + 1}"><div class="flexdiffuse-patch"></div></div>'
        f"<figcaption>image {number + 1}</figcaption></figure>"
    )
