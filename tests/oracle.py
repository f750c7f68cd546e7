"""A plain, loop-by-loop reading of the algorithm (docs/algorithm.md), written from its text.

It is slow on purpose: one Python loop per step, lists instead of tensors where the algorithm talks
about positions and pairs. Tests compare :func:`flexdiffuse.guide` against it, and the
benchmark measures how much faster the engine is.

The discrete steps (argmax, greedy order, peaks, thresholds) must see exactly the alignment
values the engine sees, or float32 rounding noise would flip ties (softmax at scale 100 gives
many exact zeros). So :func:`oracle_guide` takes the alignment matrices from
``flexdiffuse.alignment.alignment``, and :func:`oracle_alignment` (a per-pair loop) checks that
function separately, within a tolerance.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np
import torch

from flexdiffuse import GuidanceParams
from flexdiffuse.alignment import alignment
from flexdiffuse.weights import guidance_weights, mean_score

CHUNK = 77
K = CHUNK - 1


def oracle_alignment(text: torch.Tensor, image: torch.Tensor) -> list[list[float]]:
    """Spec 1, pair by pair: ``A[i][p - 1]`` for image token i and editable position p."""
    text = text.float()
    image = image.float()
    table = []
    for i in range(image.shape[0]):
        cosines = [
            float(torch.nn.functional.cosine_similarity(image[i], text[p], dim=0, eps=1e-12))
            for p in range(text.shape[0])
        ]
        logits = torch.tensor([100.0 * c for c in cosines], dtype=torch.float32)
        table.append(torch.softmax(logits, dim=0).tolist()[1:])
    return table


def oracle_assign(
    align: list[list[float]], reuse: bool, order: str
) -> tuple[list[int | None], list[float]]:
    """Spec 2: image index (None: unassigned) and score for every editable position."""
    n, positions = len(align), len(align[0])
    if reuse:
        index = []
        for p in range(positions):
            best = 0
            for i in range(1, n):
                if align[i][p] > align[best][p]:
                    best = i
            index.append(best)
        return index, [align[m][p] for p, m in enumerate(index)]
    pairs = [(i, p) for i in range(n) for p in range(positions)]
    if order == "fit":
        pairs.sort(key=lambda ip: (-align[ip[0]][ip[1]], ip[1], ip[0]))
    else:
        pairs.sort(key=lambda ip: (ip[1], -align[ip[0]][ip[1]], ip[0]))
    index: list[int | None] = [None] * positions
    used: set[int] = set()
    for i, p in pairs:
        if index[p] is None and i not in used:
            index[p] = i
            used.add(i)
    score = [0.0 if m is None else align[m][p] for p, m in enumerate(index)]
    return index, score


def oracle_blend(a: list[float], b: list[float]) -> list[float]:
    """Spec 3 blend: a whole-vector rule on the sign of each vector's maximum."""
    if max(a) >= 0 and max(b) >= 0:
        return [max(x, y) for x, y in zip(a, b, strict=True)]
    if max(a) >= 0:
        return [x + y for x, y in zip(a, b, strict=True)]
    return [min(x, y) for x, y in zip(a, b, strict=True)]


def oracle_clustered(c: float, s: list[float]) -> list[float] | None:
    """Spec 3 clustered weights, or None when there is no peak."""
    theta = mean32(s)
    candidates = [
        k for k in range(1, K - 1) if s[k] >= theta and s[k - 1] <= s[k] and s[k] >= s[k + 1]
    ]
    peaks = [k for k in candidates if k - 1 not in candidates]
    if not peaks:
        return None
    valleys = [0]
    for a, b in itertools.pairwise(peaks):
        valleys.append(a + math.ceil((b - a) / 2))
    valleys.append(K - 1)
    w = [1.0] * K
    w[0] = 0.0
    for j, peak in enumerate(peaks):
        left, right = valleys[j], valleys[j + 1]
        d = peak - left
        for x in range(left + 1, peak):
            w[x] = 1 - (peak - x) / d
        d = right - peak
        for x in range(peak + 1, right + 1):
            w[x] = 1 - (x - peak) / d
    return [c * v for v in w]


def oracle_floor(s: list[float], params: GuidanceParams) -> float:
    """Spec 3 and 15: the threshold floor, or the automatic one, the mean of the 76 scores."""
    if params.auto_floor:
        return mean32(s)
    return params.threshold_floor


def weights32(s: list[float], params: GuidanceParams) -> list[float]:
    """Spec 3's weights as the engine's float32 arithmetic gives them, checked against
    :func:`oracle_weights` (within float32 rounding).

    The tween's whole-token test (spec 4) is a discontinuity for negative weights (push away,
    or take whole), so one float32 ulp of a weight decides it; like the alignment, the
    discrete step takes the engine's own numbers, after they are checked to be the spec's.
    """
    score = torch.tensor(s, dtype=torch.float32)
    floor = mean_score(score) if params.auto_floor else params.threshold_floor
    engine = guidance_weights(
        score,
        linear=params.linear,
        clustered=params.clustered,
        threshold_mult=params.threshold_mult,
        threshold_floor=floor,
    ).tolist()
    spec = oracle_weights(s, params)
    for k, (mine, theirs) in enumerate(zip(spec, engine, strict=True)):
        if abs(mine - theirs) > 1e-5:
            raise AssertionError(f"weight {k}: the spec gives {mine}, the engine {theirs}")
    return engine


def f32(x: float) -> float:
    """``x`` rounded to the nearest float32, as the engine's float32 arithmetic rounds."""
    return float(np.float32(x))


def mean32(s: list[float]) -> float:
    """Spec 3 and 15: the mean of the 76 scores in float32 arithmetic, as the spec says.

    In float64 the mean of one denormal score and 75 zeros is a positive number below every
    float32, where float32 gives 0: the two means would put the floor on different sides of
    the zeros.
    """
    return float(torch.tensor(s, dtype=torch.float32).mean())


def oracle_weights(s: list[float], params: GuidanceParams) -> list[float]:
    """Spec 3: linear, then blended with clustered and threshold weights."""
    w = [params.linear * k / (K - 1) for k in range(K)]
    if params.clustered != 0:
        clustered = oracle_clustered(params.clustered, s)
        if clustered is not None:
            w = oracle_blend(w, clustered)
    if params.threshold_mult != 0:
        floor = oracle_floor(s, params)
        threshold = [params.threshold_mult if v >= floor else 0.0 for v in s]
        w = oracle_blend(w, threshold)
    return w


class Move(NamedTuple):
    """How one editable position moves: toward image token ``index`` (its alignment
    ``score``), to the vector ``result``; ``concept``: a mapping concept decided it."""

    index: int
    score: float
    result: torch.Tensor
    concept: bool


def oracle_moves(
    text: torch.Tensor,
    image: torch.Tensor,
    params: GuidanceParams,
    align: list[list[float]],
    concepts: tuple[list[list[float]], list[list[float]]] | None,
    token_weights: list[float] | None = None,
) -> list[Move | None]:
    """Spec 2-5 for one chunk ``[77, d]`` given its alignment: each editable position's move
    (None: it keeps its text), in float32.

    ``concepts`` holds the concept->image and text->concept alignments, or None.
    ``token_weights`` (FlexDiffuse's extension for several images, beyond the original
    algorithm) scales the move toward each image token: the tween's capped weight is
    multiplied by it, and a concept-mapped position moves that fraction of the way (at most
    all of it). The image strength (spec 16) scales both the same way, before the token weight.
    """
    text = text.float()
    image = image.float()
    index, score = oracle_assign(align, params.reuse, params.order)
    w = weights32(score, params)
    moves: list[Move | None] = [None] * (CHUNK - 1)
    for p in range(1, CHUNK):
        k = p - 1
        if index[k] is None:
            continue
        # Spec 16: iw is float32 arithmetic, in this order; the whole-token test compares it
        # with 1 - s in float32 too (a negative iw flips from "push away" to "take whole"
        # there, so float64 would disagree with the spec at the boundary).
        iw = f32(min(f32(w[k]), f32(params.max_guidance)) * f32(params.strength))
        if token_weights is not None:
            iw = f32(iw * f32(token_weights[index[k]]))
        target = image[index[k]]
        if iw == 0:
            continue
        if abs(iw) >= float(np.float32(1) - np.float32(score[k])):
            moves[k] = Move(index[k], score[k], target, False)
        else:
            moves[k] = Move(index[k], score[k], text[p] + (target - text[p]) * iw, False)
    if concepts is not None:
        concept_to_image, text_to_concept = concepts
        concept_image, _ = oracle_assign(concept_to_image, False, "text")
        concept_of, concept_score = oracle_assign(text_to_concept, True, "fit")
        for p in range(1, CHUNK):
            c = concept_of[p - 1]
            if c != 0 and concept_score[p - 1] > params.concept_threshold:
                taken = concept_image[c - 1]
                if taken is None:
                    continue
                t = 1.0 if token_weights is None else token_weights[taken]
                mix = min(params.strength * t, 1.0)
                if mix == 0:
                    moves[p - 1] = None
                    continue
                result = image[taken] if mix >= 1 else text[p] + (image[taken] - text[p]) * mix
                moves[p - 1] = Move(taken, align[taken][p - 1], result, True)
    return moves


def apply_moves(text: torch.Tensor, moves: list[Move | None]) -> torch.Tensor:
    """The chunk ``[77, d]`` in float32 with each position's move applied."""
    out = text.float().clone()
    for k, move in enumerate(moves):
        if move is not None:
            out[k + 1] = move.result
    return out


def oracle_chunk(
    text: torch.Tensor,
    image: torch.Tensor,
    params: GuidanceParams,
    align: list[list[float]],
    concepts: tuple[list[list[float]], list[list[float]]] | None,
    token_weights: list[float] | None = None,
) -> torch.Tensor:
    """Spec 2-5 for one chunk ``[77, d]`` given its alignment; returns float32."""
    return apply_moves(text, oracle_moves(text, image, params, align, concepts, token_weights))


def oracle_guide(
    text_cond: torch.Tensor,
    image: torch.Tensor,
    params: GuidanceParams,
    concepts: torch.Tensor | None = None,
    *,
    pairwise: bool = False,
    token_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Spec 1-5 on ``[..., 77*k, d]``: every chunk of every prompt on its own.

    ``pairwise`` computes the alignments with the pair-by-pair loop too (the whole spec as
    loops, for the benchmark); by default they come from the engine so that tests compare the
    discrete steps on identical numbers.
    """
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    if pairwise:
        align = [oracle_alignment(chunk, image) for chunk in chunks]
    else:
        align = alignment(chunks, image).tolist()
    if concepts is not None:
        if pairwise:
            concept_to_image = oracle_alignment(concepts, image)
            text_to_concept = [oracle_alignment(chunk, concepts) for chunk in chunks]
        else:
            concept_to_image = alignment(concepts, image).tolist()
            text_to_concept = alignment(chunks, concepts).tolist()
    weights = None if token_weights is None else token_weights.tolist()
    out = []
    for c, chunk in enumerate(chunks):
        pair = (concept_to_image, text_to_concept[c]) if concepts is not None else None
        out.append(oracle_chunk(chunk, image, params, align[c], pair, weights))
    return torch.stack(out).to(text_cond.dtype).reshape(text_cond.shape)


def oracle_guide_groups(
    text_cond: torch.Tensor,
    groups: list[tuple[torch.Tensor, GuidanceParams, torch.Tensor | None]],
    concepts: torch.Tensor | None = None,
) -> torch.Tensor:
    """Spec 17 on ``[..., 77*k, d]``: image groups ``(tokens, recipe, token weights)``, each
    planned on its own (spec 1-5), one group's move per position: among the groups whose
    concepts decided it, else among those that move it, the best-aligned; the earlier group
    on equal scores."""
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    out = []
    for chunk in chunks:
        per_group = []
        for image, params, weights in groups:
            align = alignment(chunk, image).tolist()
            pair = None
            if concepts is not None:
                pair = (alignment(concepts, image).tolist(), alignment(chunk, concepts).tolist())
            token_weights = None if weights is None else weights.tolist()
            per_group.append(oracle_moves(chunk, image, params, align, pair, token_weights))
        chosen: list[Move | None] = []
        for k in range(CHUNK - 1):
            candidates = [moves[k] for moves in per_group if moves[k] is not None]
            decided = [move for move in candidates if move.concept]
            best = None
            for move in decided or candidates:
                if best is None or move.score > best.score:
                    best = move
            chosen.append(best)
        out.append(apply_moves(chunk, chosen))
    return torch.stack(out).to(text_cond.dtype).reshape(text_cond.shape)
