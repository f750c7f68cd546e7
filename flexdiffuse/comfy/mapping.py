"""The alignment preview as ComfyUI shows it: a picture per guidance image and a token table.

The same content as the webui's "Preview mapping": for every prompt position the image token
it maps to, their alignment, how far it moves and whether a concept decided it; each guidance
image with the patches the prompt takes lit (:func:`~flexdiffuse.preview.patch_heat`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image

from ..guidance import ConditioningGuide
from ..preview import (
    PositionReport,
    chunk_rows,
    effect_text,
    explain,
    explain_pure,
    heat_overlay,
    image_place,
    mark_padding,
    patch_heat,
    prompt_number,
    summary_text,
    token_label,
)

DISPLAY_SIZE = 224

END_LABEL = "<|endoftext|>"
"""CLIP's end-of-text token; every position after it is padding, whatever the tokenizer pads
with (SD 1.x: the end token again, SDXL's ViT-bigG: ``!``): the table folds those rows."""

PAD_LABEL = "(padding)"


def pictures(pixels: list[torch.Tensor]) -> list[Image.Image]:
    """ComfyUI IMAGE pictures ``[H, W, C]`` in 0..1 as the tower sees them (centre square)."""
    out = []
    for picture in pixels:
        array = (picture[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        image = Image.fromarray(np.ascontiguousarray(array), "RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        square = image.crop((left, top, left + side, top + side))
        out.append(square.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.BICUBIC))
    return out


def token_labels(clip: Any, prompt: str) -> list[list[str]] | None:
    """The prompt's tokens per chunk as the graph's CLIP splits them (None: cannot tell)."""
    if clip is None or not prompt.strip():
        return None
    try:
        tokens = clip.tokenize(prompt)
        chunks = next(iter(tokens.values()))
        return [
            mark_padding(
                [word.replace("</w>", "") for _, word in clip.tokenizer.untokenize(chunk)],
                END_LABEL,
                PAD_LABEL,
            )
            for chunk in chunks
        ]
    except (AttributeError, KeyError, StopIteration, TypeError):
        return None


def explain_guide(
    states: torch.Tensor, guide: ConditioningGuide, pure: bool = False
) -> list[list[PositionReport]]:
    """The reports of one prompt's states ``[77*k, width]``, one list per guided part; ``pure``:
    the prompt is empty, and the guide node replaces it by the image."""
    if pure:
        return [
            explain_pure(
                states[..., part.channel_start : part.channel_stop],
                part.image_tokens,
                guide.params,
            )
            for part in guide.parts
        ]
    return [
        explain(
            states[..., part.channel_start : part.channel_stop],
            part.image_tokens,
            guide.params,
            part.concept_cond,
            part.token_weights,
        )
        for part in guide.parts
    ]


def render_pictures(
    reports: list[PositionReport], images: list[Image.Image], token_count: int
) -> list[Image.Image]:
    """Each guidance image with the patches the prompt's own tokens take lit."""
    per_image = token_count // max(1, len(images))
    grid = math.isqrt(per_image - 1)
    shown = [r for r in reports if r.image_token >= 0]
    return [
        heat_overlay(image, patch_heat(shown, number, per_image, grid))
        for number, image in enumerate(images)
    ]


def render_table(
    reports: list[PositionReport],
    labels: list[list[str]] | None,
    token_count: int,
    image_count: int,
    title: str = "",
) -> str:
    """The token table as text: one row per prompt position, each chunk's padding folded."""
    per_image = token_count // max(1, image_count)
    grid = math.isqrt(per_image - 1)
    lines = [title] if title else []
    lines.append(summary_text(reports))
    lines.append(
        f"{'#':>4}  {'token':<16} {'alignment':>9}  {'image token':<22} {'weight':>6}  effect"
    )
    for shown, padding in chunk_rows(reports, labels, PAD_LABEL):
        for report in shown:
            lines.append(_row(report, token_label(labels, report) or "", per_image, grid))
        if padding:
            first, last = (prompt_number(r) for r in (padding[0], padding[-1]))
            count = sum(r.moved for r in padding)
            lines.append(f"{first}-{last}  (padding: {count} of {len(padding)} move)")
    return "\n".join(lines)


def _row(report: PositionReport, label: str, per_image: int, grid: int) -> str:
    number = prompt_number(report)
    where, alignment = "-", "-"
    place = image_place(report, per_image, grid)
    if place is not None:
        image, row, column = place
        where = f"image {image + 1}, " + ("class" if row < 0 else f"patch {row + 1},{column + 1}")
        if not report.pure:
            alignment = f"{report.alignment:.2f}"
    return (
        f"{number:>4}  {label[:16]:<16} {alignment:>9}  {where:<22} {report.weight:+6.2f}  "
        f"{effect_text(report)}"
    )
