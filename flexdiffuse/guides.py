"""Building a job's guides from encoded towers and the conditioning parts they guide.

Both hosts build their guides here: the webui glue (``webui/prepare.py``) and ComfyUI's
(``comfy/guiding.py``) only adapt their own objects (settings and loaded models, or
``CLIP_VISION`` inputs and ``CONDITIONING`` lists) into :class:`EncodedPart` rows, and say
what to do with their own controls through an :class:`Advice`. Every refusal is worded here
once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine import CHUNK, moves_tokens
from .families import ConditioningPart, Family
from .guidance import ConditioningGuide, PartGuide
from .known_towers import VIT_BIGG
from .params import JOB_RECIPE, JobParams
from .recipes import ImageTokens, group_images, recipe_params

__all__ = [
    "Advice",
    "EncodedPart",
    "GuideError",
    "ImageTokens",
    "check_concepts",
    "check_pooled",
    "is_empty_prompt",
    "negative_guide",
    "nothing_to_guide",
    "prompt_guide",
]


class GuideError(ValueError):
    """Input FlexDiffuse cannot guide; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Advice:
    """How a host tells the user to fix what only its own controls fix: ``add_bigg``, how an
    SDXL job gets its ViT-bigG tower too (webui: a setting; ComfyUI: a second input)."""

    add_bigg: str


@dataclass(frozen=True)
class EncodedPart:
    """One conditioning part with its tower's tokens of every image of the job.

    ``images`` are the prompt's guidance images (their tokens ``[n, d]``, weight, recipe and
    mask keep); ``negative`` the negative image's tokens (None: no negative image).
    """

    part: ConditioningPart
    images: Sequence[ImageTokens]
    negative: torch.Tensor | None = None


def check_pooled(
    params: JobParams, family: Family, parts: Sequence[ConditioningPart], advice: Advice
) -> None:
    """Refuse pooled image guidance where there is no pooled ViT-bigG vector to move, or no
    ViT-bigG tower among the ``parts`` to guide it (before anything is encoded)."""
    if not params.pooled:
        return
    if not family.pooled:
        raise GuideError(
            "Pooled image guidance moves the pooled ViT-bigG vector of SDXL checkpoints only "
            f"(the refiner's too); set it to 0 for this {family.name} checkpoint."
        )
    if all(part.tower != VIT_BIGG for part in parts):
        raise GuideError(
            "Pooled image guidance moves SDXL's pooled ViT-bigG embedding, so it needs the "
            f"{VIT_BIGG.label} vision model: {advice.add_bigg}, or set pooled image guidance "
            "to 0."
        )


def check_concepts(states: torch.Tensor) -> torch.Tensor:
    """The mapping-concepts prompt's states ``[77, width]``, checked to fit one chunk."""
    if states.shape[0] > CHUNK:
        raise GuideError(
            f"The mapping concepts prompt is {states.shape[0] // CHUNK} chunks long; it must fit "
            "in one (75 tokens). Name only the image concepts to map, e.g. 'dog, sunset'."
        )
    return states


def prompt_guide(
    params: JobParams, encoded: Sequence[EncodedPart], concepts: torch.Tensor | None
) -> ConditioningGuide | None:
    """The guide of the prompt by its images (None: no guidance image)."""
    if not encoded or not encoded[0].images:
        return None
    try:
        parts = tuple(
            _part_guide(params, e.part, e.images, _concept_part(concepts, e.part)) for e in encoded
        )
    except ValueError as error:  # an unknown recipe, a mask keep that does not fit
        raise GuideError(str(error)) from None
    return ConditioningGuide(params.guidance, parts, pooled_image(params, encoded), params.pooled)


def negative_guide(params: JobParams, encoded: Sequence[EncodedPart]) -> ConditioningGuide | None:
    """The guide of the negative prompt by the negative image (None: none, or weight 0)."""
    if not encoded or encoded[0].negative is None or params.negative_weight == 0:
        return None
    parts = []
    for e in encoded:
        assert e.negative is not None
        negative = ImageTokens(e.negative, params.negative_weight)
        parts.append(_part_guide(params, e.part, [negative], None))
    return ConditioningGuide(params.guidance, tuple(parts))


def pooled_image(params: JobParams, encoded: Sequence[EncodedPart]) -> torch.Tensor | None:
    """The images' pooled ViT-bigG embedding (their projected class tokens, weighted)."""
    if not params.pooled:
        return None
    bigg = next((e for e in encoded if e.part.tower == VIT_BIGG), None)
    if bigg is None:  # check_pooled refuses this before encoding
        raise GuideError(f"Pooled image guidance needs the {VIT_BIGG.label} vision model.")
    # The class token describes the whole picture: a mask does not change it.
    classes = torch.stack([image.tokens[0] for image in bigg.images])
    mix = torch.tensor([i.weight for i in bigg.images], dtype=classes.dtype, device=classes.device)
    return (classes * mix.unsqueeze(-1)).sum(0) / mix.sum()


def _part_guide(
    params: JobParams,
    part: ConditioningPart,
    images: Sequence[ImageTokens],
    concept: torch.Tensor | None,
) -> PartGuide:
    """The part's guide: its images' kept tokens by recipe (§17, §18); images all of one
    recipe, unmasked and of weight 1 take the algorithm's exact path."""
    groups = group_images(images, params.guidance)
    return PartGuide.of_groups(
        part.channel_start,
        groups,
        concept,
        per_image=len(images[0].tokens),
        keeps=[image.keep for image in images],
    )


def _concept_part(concepts: torch.Tensor | None, part: ConditioningPart) -> torch.Tensor | None:
    return None if concepts is None else concepts[:, part.channel_start : part.channel_stop]


def is_empty_prompt(states: torch.Tensor, empty: torch.Tensor | None) -> bool:
    """Whether token states ``[..., 77*k, width]`` are the encoded empty prompt ``empty``.

    The one rule of both hosts: a prompt is empty when the checkpoint encodes it as it encodes
    "" (whitespace, a prompt of LoRA tags alone), which it then replaces by the image (pure
    image guidance, docs/algorithm.md §6). The tolerance absorbs a batch's rounding on a GPU;
    any token changes the states after it by far more (the text encoder is causal).
    """
    if empty is None or states.shape[-2:] != empty.shape[-2:]:
        return False
    empty = empty.to(device=states.device, dtype=torch.float32)
    return bool(torch.allclose(states.float(), empty.expand_as(states), rtol=1e-2, atol=1e-2))


def nothing_to_guide(
    params: JobParams,
    *,
    images: bool,
    negative: bool,
    empty_prompt: bool,
    recipes: Sequence[str] = (),
) -> str | None:
    """Why a job moves no token at all, or None when it guides something.

    One rule for both hosts: no image that guides (every weight 0), an image strength of 0,
    or weights and a cap that move no token with no concepts prompt, no empty prompt (which
    the image replaces whatever the weights) and no pooled guidance (the pooled vector moves
    whatever the weights). ``images``: a guidance image guides (weight above 0); ``negative``
    a negative image does; ``empty_prompt``: a prompt is empty; ``recipes``: the recipes of the
    images that guide (docs/algorithm.md §17; none given: the job's settings).
    """
    if not images and not negative:
        return "FlexDiffuse guided nothing: every given image has weight 0."
    if params.guidance.strength == 0:
        return "FlexDiffuse guided nothing: Image strength is 0."
    concepts = images and bool(params.concepts.strip())
    pooled = images and params.pooled > 0
    moves = any(
        moves_tokens(recipe_params(params.guidance, recipe), concepts=concepts)
        for recipe in (recipes or [JOB_RECIPE])
    )
    if not moves and not ((images and empty_prompt) or pooled):
        return (
            "FlexDiffuse guided nothing: Linear, Clustered and Threshold with Max image "
            "guidance move no token, and neither mapping concepts nor pooled guidance are set."
        )
    return None
