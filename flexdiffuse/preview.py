"""Why a prompt moves as it does: the guidance decisions of every prompt position.

:func:`explain` reports the same :class:`~flexdiffuse.engine.GuidancePlan` that
:func:`~flexdiffuse.engine.guide` applies, position by position, for hosts to show users what
the sliders do.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image

from .engine import CHUNK, check_inputs, plan_guidance
from .params import GuidanceParams


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


def effect_text(report: PositionReport) -> str:
    """What guidance does at one position, in words (the preview's "effect" column)."""
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
