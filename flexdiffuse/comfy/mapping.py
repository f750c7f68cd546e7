"""The alignment preview as ComfyUI shows it: a picture per guidance image and a token table.

The same content as the webui's "Preview mapping": for every prompt position the image token
it maps to, their alignment, how far it moves, whether a concept decided it and, where images
have recipes of their own, which recipe moved it; each guidance image with the patches the
prompt takes lit (:func:`~flexdiffuse.preview.patch_heat`) and those its mask leaves out
dimmed (:func:`~flexdiffuse.preview.dim_masked`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from PIL import Image

from ..guidance import ConditioningGuide, PartGuide
from ..params import JOB_RECIPE, RECIPE_LABELS
from ..preview import (
    PositionReport,
    chunk_rows,
    dim_masked,
    effect_text,
    explain_part,
    heat_overlay,
    image_place,
    mark_padding,
    patch_heat,
    prompt_number,
    summary_text,
    token_label,
)
from ..references import thumbnail_squares
from .guiding import WeightedImages
from .referencing import to_picture

DISPLAY_SIZE = 224

END_LABEL = "<|endoftext|>"
"""CLIP's end-of-text token; every position after it is padding, whatever the tokenizer pads
with (SD 1.x: the end token again, SDXL's ViT-bigG: ``!``): the table folds those rows."""

PAD_LABEL = "(padding)"


def pictures(pixels: list[torch.Tensor]) -> list[Image.Image]:
    """ComfyUI IMAGE pictures ``[H, W, C]`` in 0..1 as the tower sees them (centre square)."""
    return [_display(to_picture(picture)) for picture in pixels]


def slot_pictures(slot: WeightedImages) -> list[Image.Image]:
    """The pictures of one image slot as the preview shows them: its IMAGE's, or its saved
    reference's thumbnail squares (a reference keeps no pictures)."""
    if slot.reference is not None:
        return [_display(tile) for tile in thumbnail_squares(slot.reference)]
    return pictures(list(slot.source))


def _display(image: Image.Image) -> Image.Image:
    side = min(image.size)
    left, top = (image.width - side) // 2, (image.height - side) // 2
    square = image.crop((left, top, left + side, top + side))
    return square.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.BICUBIC)


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
    return [
        explain_part(
            states[..., part.channel_start : part.channel_stop], part, guide.params, pure=pure
        )
        for part in guide.parts
    ]


def _grid(part: PartGuide, image_count: int) -> tuple[int, int]:
    """Tokens per image and the side of the patch grid of ``part``'s images."""
    per_image = part.per_image or len(part.image_tokens) // max(1, image_count)
    return per_image, math.isqrt(per_image - 1)


def render_pictures(
    reports: list[PositionReport], images: list[Image.Image], part: PartGuide
) -> list[Image.Image]:
    """Each guidance image with the patches its mask leaves out dimmed and the patches the
    prompt's own tokens take lit."""
    per_image, grid = _grid(part, len(images))
    keeps = part.keeps or (None,) * len(images)
    shown = [r for r in reports if r.image_token >= 0]
    return [
        heat_overlay(dim_masked(image, keep), patch_heat(shown, number, per_image, grid))
        for number, (image, keep) in enumerate(zip(images, keeps, strict=True))
    ]


def composed(part: PartGuide) -> bool:
    """Whether ``part``'s images have recipes other than the job's settings, or masks."""
    return any(g.name != JOB_RECIPE for g in part.groups) or any(
        keep is not None for keep in part.keeps
    )


def images_line(part: PartGuide, recipes: list[str]) -> str:
    """What each image of the part is: its recipe and how much of it its mask keeps."""
    described = []
    for number, recipe in enumerate(recipes):
        keep = part.keeps[number] if number < len(part.keeps) else None
        text = f"image {number + 1}: {RECIPE_LABELS.get(recipe, recipe)}"
        if keep is not None:
            text += f", masked ({int(keep[1:].sum())} of {len(keep) - 1} patches kept)"
        described.append(text)
    return "; ".join(described)


def render_table(
    reports: list[PositionReport],
    labels: list[list[str]] | None,
    part: PartGuide,
    recipes: list[str],
    title: str = "",
) -> str:
    """The token table as text: one row per prompt position, each chunk's padding folded;
    ``recipes`` are the part's images' recipe keys. Where images have recipes of their own
    or masks, a line says what each image is and each row which recipe moved it."""
    per_image, grid = _grid(part, len(recipes))
    show_recipe = composed(part)
    lines = [title] if title else []
    lines.append(summary_text(reports))
    if show_recipe:
        lines.append(images_line(part, recipes))
    header = f"{'#':>4}  {'token':<16} {'alignment':>9}  {'image token':<22} {'weight':>6}  effect"
    lines.append(header + ("  (recipe)" if show_recipe else ""))
    for shown, padding in chunk_rows(reports, labels, PAD_LABEL):
        for report in shown:
            row = _row(report, token_label(labels, report) or "", per_image, grid)
            lines.append(row + (f"  ({report.recipe})" if show_recipe and report.recipe else ""))
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
