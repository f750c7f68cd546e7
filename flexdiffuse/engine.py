"""The engine's entry points: validate inputs, plan every position's move, apply the plan.

:func:`plan_guidance` runs the algorithm's decisions (docs/algorithm.md §1-§5: alignment,
assignment, weights, tween plan, concepts) and returns them per position as a
:class:`GuidancePlan`; :func:`guide` applies a plan to the text states and
:func:`~flexdiffuse.preview.explain` reports one, so the two can never disagree.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import torch

from .alignment import alignment
from .assignment import assign
from .concepts import concept_hits, concept_map, concept_weights
from .params import GuidanceParams
from .tween import TweenPlan, tween, tween_plan
from .weights import guidance_weights, mean_score, weights_can_move

logger = logging.getLogger(__name__)

CHUNK = 77
"""Tokens per prompt chunk: the header (BOS) and 76 editable positions."""

PURE_IMAGE_WARNING = (
    "FlexDiffuse: the prompt is empty, so the image alone replaces it (pure image guidance). "
    "This often gives strange results; add a prompt for more control."
)


class GuidancePlan(NamedTuple):
    """How every editable position of every chunk moves, ``[..., 76]`` each.

    ``index`` is the image token it moves toward (-1: none), ``score`` their alignment,
    ``weight`` how far it moves (0: unchanged, negative: away), ``whole`` whether it takes the
    token whole, ``concept`` whether a mapping concept decided it. ``floor`` ``[...]`` is the
    threshold floor each chunk used: the parameter, or the automatic one (§15).
    """

    index: torch.Tensor
    score: torch.Tensor
    weight: torch.Tensor
    whole: torch.Tensor
    concept: torch.Tensor
    floor: torch.Tensor


def guide(
    text_cond: torch.Tensor,
    image_tokens: torch.Tensor,
    params: GuidanceParams,
    concept_cond: torch.Tensor | None = None,
    *,
    token_weights: torch.Tensor | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """Move prompt tokens toward their best-aligned image tokens (docs/algorithm.md §1-§5).

    Args:
        text_cond: text-encoder states ``[..., 77*k, d]``; each 77-token chunk is guided on
            its own, and any leading dimensions (batch, rows) are independent prompts.
        image_tokens: the guidance image's tokens ``[n, d]`` (see :class:`ImageEncoder`).
        params: the engine's parameters (job settings such as the step window are not).
        concept_cond: the encoded mapping-concepts prompt ``[77, d]``, or None for no
            concept mapping.
        token_weights: a weight per image token ``[n]`` (docs/algorithm.md §10, for several
            images of their own weights): a position's capped weight is multiplied by its
            image token's weight, and a concept-mapped position moves that fraction of the
            way (all of it from 1 up). None: every token weighs 1.
        check_finite: reject NaN/inf inputs. This reads one flag back from the device; pass
            False where the inputs are known to be finite.

    Returns:
        A new tensor with ``text_cond``'s shape, dtype and device. Inputs are not modified.

    Raises:
        ValueError: shapes that do not fit together, empty or non-finite inputs.
    """
    check_inputs(text_cond, image_tokens, concept_cond, token_weights, check_finite=check_finite)
    _check_params(params)
    if not moves_tokens(params, concepts=concept_cond is not None):
        return text_cond.clone()  # the exact copy, whatever the dtype (§7, §16)
    chunks = _chunks(text_cond)
    image = image_tokens.to(text_cond.device)
    plan = plan_guidance(chunks, image, params, concept_cond, token_weights)
    guided = tween(chunks, image, plan.index, TweenPlan(plan.weight, plan.whole))
    return guided.to(text_cond.dtype).reshape(text_cond.shape)


def plan_guidance(
    chunks: torch.Tensor,
    image: torch.Tensor,
    params: GuidanceParams,
    concept_cond: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
) -> GuidancePlan:
    """Every editable position's move for prompt chunks ``[..., 77, d]`` (inputs checked).

    ``image`` must be on the chunks' device; see :func:`guide` for the other arguments.
    """
    _check_params(params)
    if token_weights is not None:
        token_weights = token_weights.to(device=chunks.device, dtype=torch.float32)
    align = alignment(chunks, image)
    taken = assign(align, reuse=params.reuse, order=params.order)
    floor = threshold_floor(taken.score, params)
    weights = guidance_weights(
        taken.score,
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        threshold_floor=floor,
    )
    weight, whole = tween_plan(
        taken, weights, params.max_guidance, token_weights, strength=params.strength
    )
    index, score = taken.index, taken.score
    concept = torch.zeros_like(whole)
    if concept_cond is not None:
        mapping = concept_map(concept_cond.to(chunks.device), image)
        hits = concept_hits(chunks, mapping, params.concept_threshold)
        mix, mix_whole = concept_weights(hits, token_weights, strength=params.strength)
        concept = hits.hit
        index = torch.where(concept, hits.image_index, index)
        weight = torch.where(concept, mix, weight)
        whole = torch.where(concept, mix_whole, whole)
        mapped = align.gather(-2, index.clamp(min=0).unsqueeze(-2)).squeeze(-2)
        score = torch.where(concept, mapped, score)
    if isinstance(floor, float):
        floor = torch.full(taken.score.shape[:-1], floor, device=chunks.device)
    else:
        floor = floor.squeeze(-1)
    return GuidancePlan(index, score, weight, whole, concept, floor)


def threshold_floor(score: torch.Tensor, params: GuidanceParams) -> float | torch.Tensor:
    """The threshold floor of each chunk of assignment scores ``[..., 76]`` (§3, §15).

    The parameter itself, or with ``auto_floor`` the chunk's mean score ``[..., 1]``,
    computed on the scores' device (nothing is read back).
    """
    return mean_score(score) if params.auto_floor else params.threshold_floor


def moves_tokens(params: GuidanceParams, *, concepts: bool = False) -> bool:
    """Whether ``params`` can move any token at all; ``concepts``: a concepts prompt is set.

    False means :func:`guide` returns the prompt unchanged: the weights and the cap move no
    token and no concepts prompt can map one, or the image strength is 0 (§16).
    """
    if params.strength == 0:
        return False
    return concepts or weights_can_move(
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        max_guidance=params.max_guidance,
        strength=params.strength,
    )


def _chunks(text_cond: torch.Tensor) -> torch.Tensor:
    return text_cond.reshape(-1, CHUNK, text_cond.shape[-1])


def pure_image_guidance(
    text_cond: torch.Tensor, image_tokens: torch.Tensor, *, check_finite: bool = True
) -> torch.Tensor:
    """docs/algorithm.md §6: replace an empty prompt's chunk(s) by the image itself.

    ``text_cond`` is the encoded empty prompt ``[..., 77*k, d]``; every chunk keeps its header
    and takes the first 76 image tokens (fewer image tokens leave the rest unchanged). Logs
    :data:`PURE_IMAGE_WARNING`; hosts should show it to the user too.
    """
    _check_text(text_cond)
    _check_tokens(image_tokens, "image_tokens", text_cond.shape[-1])
    if check_finite:
        _check_finite(text_cond=text_cond, image_tokens=image_tokens)
    logger.warning(PURE_IMAGE_WARNING)
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1]).clone()
    take = min(CHUNK - 1, image_tokens.shape[0])
    image = image_tokens[:take].to(device=text_cond.device, dtype=text_cond.dtype)
    chunks[:, 1 : 1 + take] = image
    return chunks.reshape(text_cond.shape)


def check_inputs(
    text_cond: torch.Tensor,
    image_tokens: torch.Tensor,
    concept_cond: torch.Tensor | None = None,
    token_weights: torch.Tensor | None = None,
    *,
    check_finite: bool = True,
) -> None:
    """Check the inputs of :func:`guide` fit together.

    Raises:
        ValueError: saying what was expected.
    """
    _check_text(text_cond)
    _check_tokens(image_tokens, "image_tokens", text_cond.shape[-1])
    if concept_cond is not None:
        _check_tokens(concept_cond, "concept_cond", text_cond.shape[-1], rows=CHUNK)
    if token_weights is not None:
        _check_token_weights(token_weights, image_tokens.shape[0])
    if check_finite:
        _check_finite(
            text_cond=text_cond,
            image_tokens=image_tokens,
            concept_cond=concept_cond,
            token_weights=token_weights,
        )


def _check_params(params: GuidanceParams) -> None:
    if not isinstance(params, GuidanceParams):
        raise TypeError(
            f"params must be GuidanceParams (the engine's parameters), got {type(params).__name__}"
            "; pass JobParams.guidance."
        )


def _check_text(text_cond: torch.Tensor) -> None:
    if not isinstance(text_cond, torch.Tensor) or text_cond.ndim < 2:
        raise ValueError(
            "text_cond must be a tensor [..., 77*k, d] of text-encoder states, "
            f"got {_describe(text_cond)}."
        )
    if not text_cond.is_floating_point():
        raise ValueError(f"text_cond must be floating point, got {text_cond.dtype}.")
    tokens = text_cond.shape[-2]
    if tokens == 0 or tokens % CHUNK:
        raise ValueError(
            f"text_cond must have a multiple of {CHUNK} tokens (whole prompt chunks) in its "
            f"second-to-last dimension, got shape {tuple(text_cond.shape)}."
        )


def _check_tokens(tokens: torch.Tensor, name: str, width: int, rows: int | None = None) -> None:
    expected = f"[{rows if rows else 'n'}, {width}]"
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2:
        raise ValueError(f"{name} must be a tensor {expected}, got {_describe(tokens)}.")
    if not tokens.is_floating_point():
        raise ValueError(f"{name} must be floating point, got {tokens.dtype}.")
    if tokens.shape[0] == 0 or (rows is not None and tokens.shape[0] != rows):
        raise ValueError(f"{name} must be {expected}, got shape {tuple(tokens.shape)}.")
    if tokens.shape[1] != width:
        raise ValueError(
            f"{name} has width {tokens.shape[1]} but the text states have width {width}: the "
            "vision model does not match the text encoder (for SD 1.x use a ViT-L/14 CLIP "
            "vision model with projection dim 768)."
        )


def _check_token_weights(weights: torch.Tensor, count: int) -> None:
    if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != (count,):
        raise ValueError(
            f"token_weights must be a tensor [{count}] (one weight per image token), got "
            f"{_describe(weights)}."
        )


def _check_finite(**tensors: torch.Tensor | None) -> None:
    for name, tensor in tensors.items():
        if tensor is None:
            continue
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or infinite values.")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
