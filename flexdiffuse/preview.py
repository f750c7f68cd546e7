"""Why a prompt moves as it does: the guidance decisions of every prompt position.

:func:`explain` reports the same :class:`~flexdiffuse.engine.GuidancePlan` that
:func:`~flexdiffuse.engine.guide` applies, position by position, for hosts to show users what
the sliders do.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from PIL import Image

from .engine import CHUNK, GuidancePlan, check_inputs, plan_guidance
from .guidance import PartGuide
from .masks import patch_grid
from .params import RECIPE_LABELS, GuidanceParams
from .recipes import plan_groups


@dataclass(frozen=True)
class PositionReport:
    """What guidance does at one editable position of one prompt chunk.

    ``image_token`` is the index of the image token it is mapped to (-1: none);
    ``alignment`` is that token's alignment with the position (the score of docs/algorithm.md §2);
    ``weight`` how far it moves toward it (negative: away); ``whole`` whether it takes the
    token whole; ``concept`` whether a mapping concept decided it; ``floor`` the threshold
    floor of its chunk (the parameter, or the automatic floor of docs/algorithm.md §15).
    """

    chunk: int
    position: int
    image_token: int
    alignment: float
    weight: float
    whole: bool
    concept: bool
    floor: float
    pure: bool = False
    """The prompt is empty: the position is replaced by its image token (§6), no alignment."""
    recipe: str = ""
    """The label of the recipe whose image moved it (§17; "" when it does not move)."""

    @property
    def moved(self) -> bool:
        """Whether the position changes at all."""
        return self.whole or self.weight != 0


def explain(
    text_cond: torch.Tensor,
    image_tokens: torch.Tensor,
    params: GuidanceParams,
    concept_cond: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
) -> list[PositionReport]:
    """The report of every editable position of one prompt ``[77*k, d]``, chunk by chunk.

    Raises:
        ValueError: inputs that :func:`~flexdiffuse.engine.guide` would refuse.
    """
    check_inputs(text_cond, image_tokens, concept_cond, token_weights)
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    plan = plan_guidance(
        chunks, image_tokens.to(chunks.device), params, concept_cond, token_weights
    )
    return _reports(plan)


def _reports(plan: GuidancePlan) -> list[PositionReport]:
    rows = zip(
        plan.index.tolist(),
        plan.score.tolist(),
        plan.weight.tolist(),
        plan.whole.tolist(),
        plan.concept.tolist(),
        strict=True,
    )
    floors = plan.floor.tolist()
    return [
        PositionReport(c, k + 1, i, s, w, h, m, floors[c])
        for c, chunk in enumerate(rows)
        for k, (i, s, w, h, m) in enumerate(zip(*chunk, strict=True))
    ]


def explain_pure(
    text_cond: torch.Tensor, image_tokens: torch.Tensor, params: GuidanceParams
) -> list[PositionReport]:
    """The reports of an empty prompt ``[77*k, d]``: what the guide does to it (docs/algorithm.md
    §6, :func:`~flexdiffuse.engine.pure_image_guidance`): position ``k`` of every chunk takes
    image token ``k - 1`` whole (the class token, then the patches), unless the image strength
    is 0 (§16)."""
    chunks = text_cond.shape[-2] // CHUNK
    replaced = params.strength != 0
    return [
        PositionReport(
            chunk,
            position,
            position - 1 if replaced and position - 1 < len(image_tokens) else -1,
            float("nan"),
            1.0 if replaced else 0.0,
            replaced,
            False,
            0.0,
            pure=True,
        )
        for chunk in range(chunks)
        for position in range(1, CHUNK)
    ]


def explain_part(
    text_cond: torch.Tensor, part: PartGuide, params: GuidanceParams, *, pure: bool = False
) -> list[PositionReport]:
    """The reports of one prompt ``[77*k, d]`` on one guided part, as the guide moves it.

    Images with recipes of their own are explained by their combined plan (§17), each moved
    position naming its recipe; masked tokens (§18) are never mapped. ``image_token`` counts
    all the part's images' tokens, unmasked (``image * part.per_image + token``), so
    :func:`image_place` finds the image and the patch.
    """
    tokens = part.image_tokens
    if pure:
        reports = explain_pure(text_cond, tokens, params)
    elif len(part.groups) > 1:
        check_inputs(text_cond, tokens, part.concept_cond)
        chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
        reports = _reports(plan_groups(chunks, part.groups, part.concept_cond))
    else:
        reports = explain(
            text_cond, tokens, part.params(params), part.concept_cond, part.token_weights
        )
    ids = part.token_ids.tolist()
    names = [g.name for g in part.groups for _ in range(len(g.image_tokens))]
    return [
        replace(
            report,
            image_token=ids[report.image_token] if report.image_token >= 0 else -1,
            recipe=RECIPE_LABELS[names[report.image_token]]
            if names and report.moved and report.image_token >= 0 and not report.pure
            else "",
        )
        for report in reports
    ]


def mark_padding(labels: list[str], end: str, pad: str) -> list[str]:
    """A chunk's token labels with every position after its end token (position 0 is the
    start token) labelled ``pad``: SD 1.x's tokenizer pads with the end token, SDXL's
    ViT-bigG tokenizer with ``!``, and the preview folds both alike."""
    if end not in labels[1:]:
        return labels
    stop = labels.index(end, 1) + 1
    return labels[:stop] + [pad] * (len(labels) - stop)


def chunk_rows(
    reports: list[PositionReport], labels: list[list[str]] | None, pad: str
) -> list[tuple[list[PositionReport], list[PositionReport]]]:
    """Each chunk's reports as the preview table shows them: the prompt's own positions, and
    the padding (labelled ``pad``) folded into one row."""
    out = []
    for chunk in sorted({report.chunk for report in reports}):
        in_chunk = [report for report in reports if report.chunk == chunk]
        padding = [report for report in in_chunk if token_label(labels, report) == pad]
        out.append(([r for r in in_chunk if r not in padding], padding))
    return out


def token_label(labels: list[list[str]] | None, report: PositionReport) -> str | None:
    """The label of a report's position (None: no labels for it)."""
    if labels is None or report.chunk >= len(labels) or report.position >= len(labels[0]):
        return None
    return labels[report.chunk][report.position]


def prompt_number(report: PositionReport) -> int:
    """The position's number in the whole prompt, chunk headers counted."""
    return report.chunk * CHUNK + report.position


def image_place(report: PositionReport, per_image: int, grid: int) -> tuple[int, int, int] | None:
    """(image, patch row, patch column) of the image token a position maps to; row and column
    are -1 for the class token; None: no image token."""
    if report.image_token < 0:
        return None
    image, index = divmod(report.image_token, per_image)
    if index == 0:
        return image, -1, -1
    row, column = divmod(index - 1, grid)
    return image, row, column


def summary_text(reports: list[PositionReport]) -> str:
    """The preview's first line: how many positions move, or that the image replaces them."""
    moved = sum(report.moved for report in reports)
    if reports and reports[0].pure:
        return f"The prompt is empty: {moved} of {len(reports)} prompt positions take the image."
    return f"{moved} of {len(reports)} prompt positions move toward the image."


def effect_text(report: PositionReport) -> str:
    """What guidance does at one position, in words (the preview's "effect" column)."""
    if report.pure:
        return "replaced by it (empty prompt)" if report.whole else "unchanged"
    if report.concept:
        return "concept: takes it whole" if report.whole else f"concept: {report.weight:.0%}"
    if report.whole:
        return "takes it whole"
    if report.weight > 0:
        return f"moves {report.weight:.0%} toward it"
    if report.weight < 0:
        return f"pushed {-report.weight:.0%} away"
    return "unchanged"


def patch_heat(
    reports: list[PositionReport], image: int, per_image: int, grid: int
) -> torch.Tensor:
    """How much the prompt takes from each patch of image ``image`` ``[grid, grid]``.

    Image tokens are numbered image by image, ``per_image`` each: the class token, then the
    ``grid * grid`` patches row by row. A whole take counts 1, a move its absolute weight.
    """
    heat = torch.zeros(grid * grid)
    for report in reports:
        index = report.image_token - image * per_image
        if report.moved and 0 < index < per_image:
            heat[index - 1] += 1.0 if report.whole else abs(report.weight)
    return heat.reshape(grid, grid)


HEAT_COLOUR = (255, 64, 32)


def heat_overlay(square: Image.Image, heat: torch.Tensor) -> Image.Image:
    """``square`` (the image as the tower saw it) with its patches lit by ``heat``, RGB."""
    square = square.convert("RGBA")
    if heat.max() > 0:
        alpha = (heat / heat.max() * 160).to(torch.uint8).numpy()
        mask = Image.fromarray(alpha, "L").resize(square.size, Image.Resampling.NEAREST)
        overlay = Image.new("RGBA", square.size, (*HEAT_COLOUR, 0))
        overlay.putalpha(mask)
        square = Image.alpha_composite(square, overlay)
    return square.convert("RGB")


MASKED_SHADE = 0.3
"""How much of a masked-out patch's brightness the preview keeps."""


def dim_masked(square: Image.Image, keep: torch.Tensor | None) -> Image.Image:
    """``square`` (the image as the tower saw it) with the patches its mask drops dimmed,
    RGB; ``keep`` is the mask's token keep ``[1 + grid²]`` (None: no mask, unchanged)."""
    square = square.convert("RGB")
    if keep is None:
        return square
    grid = patch_grid(len(keep))
    dropped = (~keep[1:].to(torch.bool)).reshape(grid, grid).to(torch.uint8) * 255
    where = Image.fromarray(dropped.numpy(), "L").resize(square.size, Image.Resampling.NEAREST)
    dark = Image.eval(square, lambda value: int(value * MASKED_SHADE))
    return Image.composite(dark, square, where)
