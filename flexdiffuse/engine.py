"""The guidance entry points: validate inputs, split chunks, run the spec's steps."""

from __future__ import annotations

import logging

import torch

from .alignment import alignment
from .assignment import assign
from .concepts import apply_concepts, concept_map
from .params import GuidanceParams
from .tween import tween
from .weights import guidance_weights

logger = logging.getLogger(__name__)

CHUNK = 77
"""Tokens per prompt chunk: the header (BOS) and 76 editable positions."""

PURE_IMAGE_WARNING = (
    "FlexDiffuse: the prompt is empty, so the image alone replaces it (pure image guidance). "
    "This often gives strange results; add a prompt for more control."
)


def guide(
    text_cond: torch.Tensor,
    image_tokens: torch.Tensor,
    params: GuidanceParams,
    concept_cond: torch.Tensor | None = None,
    *,
    token_weights: torch.Tensor | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """Move prompt tokens toward their best-aligned image tokens (spec sections 1-5).

    Args:
        text_cond: text-encoder states ``[..., 77*k, d]``; each 77-token chunk is guided on
            its own, and any leading dimensions (batch, rows) are independent prompts.
        image_tokens: the guidance image's tokens ``[n, d]`` (see :class:`ImageEncoder`).
        params: the guidance parameters.
        concept_cond: the encoded mapping-concepts prompt ``[77, d]``, or None for no
            concept mapping.
        token_weights: a weight per image token ``[n]`` (an extension beyond the spec, for
            several images of their own weights): a position's capped weight is multiplied by
            its image token's weight, and a concept-mapped position moves that fraction of
            the way (all of it from 1 up). None is the spec: every token weighs 1.
        check_finite: reject NaN/inf inputs. This reads one flag back from the device; pass
            False where the inputs are known to be finite.

    Returns:
        A new tensor with ``text_cond``'s shape, dtype and device. Inputs are not modified.

    Raises:
        ValueError: shapes that do not fit together, empty or non-finite inputs.
    """
    check_inputs(text_cond, image_tokens, concept_cond, token_weights, check_finite=check_finite)
    if not params.has_weights and concept_cond is None:
        return text_cond.clone()

    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    image = image_tokens.to(text_cond.device)
    if token_weights is not None:
        token_weights = token_weights.to(device=text_cond.device, dtype=torch.float32)
    taken = assign(alignment(chunks, image), reuse=params.reuse, order=params.order)
    weights = guidance_weights(
        taken.score,
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        threshold_floor=params.threshold_floor,
    )
    guided = tween(chunks, image, taken, weights, params.max_guidance, token_weights)
    if concept_cond is not None:
        mapping = concept_map(concept_cond.to(text_cond.device), image)
        guided = apply_concepts(
            guided, chunks, image, mapping, params.concept_threshold, token_weights
        )
    return guided.to(text_cond.dtype).reshape(text_cond.shape)


def pure_image_guidance(
    text_cond: torch.Tensor, image_tokens: torch.Tensor, *, check_finite: bool = True
) -> torch.Tensor:
    """Spec section 6: replace an empty prompt's chunk(s) by the image itself.

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
        if tensor is None or tensor.is_meta:
            continue  # meta tensors have no values to check
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError(f"{name} contains NaN or infinite values.")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__
