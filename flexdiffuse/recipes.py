"""docs/algorithm.md §17: guidance images with recipes of their own, combined into one move.

A *recipe* is the method's parameters one image guides with (a preset, or the job's own
sliders). Images that share a recipe form one *image group* and are planned together, exactly
as §10 plans several images; groups of different recipes are planned each on its own and then
*combined*: every position takes the move of one group, chosen by :func:`combine_plans`. When
every image has the same recipe there is one group, and the result is the plain method's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .engine import (
    CHUNK,
    GuidancePlan,
    check_inputs,
    guide,
    moves_tokens,
    plan_guidance,
)
from .params import JOB_RECIPE, RECIPE_LABELS, GuidanceParams
from .presets import preset_values
from .tween import TweenPlan, tween


def recipe_params(job: GuidanceParams, recipe: str | None) -> GuidanceParams:
    """The parameters an image guides with: the job's, or with preset ``recipe``'s values.

    A preset sets only its own parameters (:data:`~flexdiffuse.presets.PRESET_FIELDS`); the
    image strength and the concept threshold stay the job's (§17). None, empty or
    :data:`JOB_RECIPE` name the job's own.

    Raises:
        ValueError: an unknown preset, naming the presets there are.
    """
    name = recipe_key(recipe)
    return job if name == JOB_RECIPE else job.replace(**preset_values(name))


def recipe_key(recipe: str | None) -> str:
    """The key of recipe ``recipe`` (a key or a label of :data:`RECIPE_LABELS`, any case);
    None or empty is :data:`JOB_RECIPE`.

    Raises:
        ValueError: an unknown recipe, naming the recipes there are.
    """
    text = (recipe or "").strip().lower()
    if not text:
        return JOB_RECIPE
    for key, label in RECIPE_LABELS.items():
        if text in (key, label.lower()):
            return key
    known = ", ".join(f"{key!r} ({label})" for key, label in RECIPE_LABELS.items())
    raise ValueError(f"Unknown recipe {recipe!r}; the recipes are {known}.")


@dataclass(frozen=True, eq=False)
class ImageTokens:
    """One guidance image's tokens ``[n, d]`` from one tower (all of them, as encoded), its
    weight, its recipe (a key of :data:`RECIPE_LABELS`) and its reference mask's token keep
    ``[n]`` (docs/algorithm.md §18; None: no mask)."""

    tokens: torch.Tensor
    weight: float = 1.0
    recipe: str = JOB_RECIPE
    keep: torch.Tensor | None = None

    def kept(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The tokens its mask keeps ``[m, d]`` and their indices among all its tokens ``[m]``."""
        if self.keep is None:
            return self.tokens, torch.arange(len(self.tokens))
        if tuple(self.keep.shape) != (len(self.tokens),):
            raise ValueError(
                f"A reference mask keeps {tuple(self.keep.shape)} tokens of an image of "
                f"{len(self.tokens)}: make the keep with masks.token_keep for these tokens."
            )
        keep = self.keep.to(device=self.tokens.device, dtype=torch.bool)
        return self.tokens[keep], keep.nonzero().flatten().cpu()


@dataclass(frozen=True)
class ImageGroup:
    """The tokens ``[n, d]`` of the images that share one recipe, in input order, with their
    per-token weights ``[n]`` (None: all 1) and the recipe's parameters."""

    image_tokens: torch.Tensor
    params: GuidanceParams
    token_weights: torch.Tensor | None = None
    name: str = JOB_RECIPE
    """The recipe's key (the first image's, where two recipes give the same parameters)."""
    token_ids: torch.Tensor | None = None
    """Each token's number among all the images' tokens, unmasked, in input order ``[n]``
    (None: not tracked); the preview maps a move back to its image and patch by it."""


def group_images(images: Sequence[ImageTokens], job: GuidanceParams) -> list[ImageGroup]:
    """The images' kept tokens, grouped by recipe (§17, §18), with their token numbers.

    Raises:
        ValueError: an unknown recipe, or a keep that does not fit its image.
    """
    kept = [image.kept() for image in images]
    offsets = torch.tensor([0, *(len(image.tokens) for image in images[:-1])]).cumsum(0)
    return group_by_recipe(
        [tokens for tokens, _ in kept],
        [recipe_params(job, image.recipe) for image in images],
        [image.weight for image in images],
        names=[recipe_key(image.recipe) for image in images],
        token_ids=[ids + offset for (_, ids), offset in zip(kept, offsets.tolist(), strict=True)],
    )


def group_by_recipe(
    tokens: Sequence[torch.Tensor],
    recipes: Sequence[GuidanceParams],
    weights: Sequence[float] | None = None,
    *,
    names: Sequence[str] | None = None,
    token_ids: Sequence[torch.Tensor] | None = None,
) -> list[ImageGroup]:
    """Each image's tokens ``[n_j, d]`` gathered into one group per distinct recipe.

    Groups come in the order of their first image; inside a group the images keep their input
    order, so images that all share one recipe give the single group of §10 (its tokens
    concatenated, the first image's first). ``weights`` are the images' weights (None: all 1);
    a group whose weights are all 1 carries no token weights (the exact plain path).
    """
    if len(tokens) != len(recipes) or (weights is not None and len(weights) != len(tokens)):
        raise ValueError("group_by_recipe needs one recipe (and one weight) per image.")
    members: dict[GuidanceParams, list[int]] = {}
    for index, recipe in enumerate(recipes):
        members.setdefault(recipe, []).append(index)
    groups = []
    for recipe, indices in members.items():
        image = torch.cat([tokens[i] for i in indices])
        token_weights = None
        if weights is not None and any(weights[i] != 1 for i in indices):
            token_weights = torch.cat(
                [torch.full((len(tokens[i]),), float(weights[i])) for i in indices]
            )
        name = JOB_RECIPE if names is None else names[indices[0]]
        ids = None if token_ids is None else torch.cat([token_ids[i] for i in indices])
        groups.append(ImageGroup(image, recipe, token_weights, name, ids))
    return groups


def guide_groups(
    text_cond: torch.Tensor,
    groups: Sequence[ImageGroup],
    concept_cond: torch.Tensor | None = None,
    *,
    check_finite: bool = True,
) -> torch.Tensor:
    """Move prompt tokens toward image groups of different recipes (docs/algorithm.md §17).

    One group is :func:`~flexdiffuse.engine.guide` exactly. With several, each group is planned
    with its own recipe, :func:`combine_plans` picks one group's move per position, and the
    tween applies it. Shapes and errors are :func:`~flexdiffuse.engine.guide`'s.
    """
    if not groups:
        raise ValueError("guide_groups needs at least one image group.")
    if len(groups) == 1:
        group = groups[0]
        return guide(
            text_cond,
            group.image_tokens,
            group.params,
            concept_cond,
            token_weights=group.token_weights,
            check_finite=check_finite,
        )
    for group in groups:
        check_inputs(
            text_cond,
            group.image_tokens,
            concept_cond,
            group.token_weights,
            check_finite=check_finite,
        )
    if not any(moves_tokens(g.params, concepts=concept_cond is not None) for g in groups):
        return text_cond.clone()
    chunks = text_cond.reshape(-1, CHUNK, text_cond.shape[-1])
    plan = plan_groups(chunks, groups, concept_cond)
    images = torch.cat([group.image_tokens for group in groups]).to(chunks.device)
    guided = tween(chunks, images, plan.index, TweenPlan(plan.weight, plan.whole))
    return guided.to(text_cond.dtype).reshape(text_cond.shape)


def plan_groups(
    chunks: torch.Tensor, groups: Sequence[ImageGroup], concept_cond: torch.Tensor | None
) -> GuidancePlan:
    """The combined plan of image groups for prompt ``chunks`` ``[..., 77, d]`` (§17).

    A group whose recipe moves no token keeps its place but is never chosen (as
    :func:`~flexdiffuse.engine.guide` leaves the prompt as it is for it); indices are into the
    groups' tokens concatenated in group order.
    """
    plans = []
    for group in groups:
        plan = plan_guidance(
            chunks,
            group.image_tokens.to(chunks.device),
            group.params,
            concept_cond,
            group.token_weights,
        )
        if not moves_tokens(group.params, concepts=concept_cond is not None):
            still = torch.zeros_like(plan.whole)
            plan = plan._replace(weight=torch.zeros_like(plan.weight), whole=still, concept=still)
        plans.append(plan)
    return combine_plans(plans, [len(group.image_tokens) for group in groups])


def combine_plans(plans: Sequence[GuidancePlan], sizes: Sequence[int]) -> GuidancePlan:
    """One move per position from the plans of image groups of ``sizes`` tokens (§17).

    A position takes the move of one group: among the groups whose mapping concepts decided
    it, else among the groups that move it at all (weight not 0), the one whose image token
    aligns best with it; on equal scores the earlier group. A position no group moves keeps
    its text. Indices are into the groups' tokens concatenated in group order.
    """
    offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0).tolist()
    moves = torch.stack([plan.weight != 0 for plan in plans])
    concept = torch.stack([plan.concept for plan in plans]) & moves
    eligible = torch.where(concept.any(0, keepdim=True), concept, moves)
    score = torch.stack([plan.score for plan in plans])
    ranked = torch.where(eligible, score, torch.tensor(float("-inf"), device=score.device))
    # argmax takes the first of equal maxima: the earlier group wins a tie.
    chosen = ranked.argmax(0, keepdim=True)

    def pick(values: torch.Tensor) -> torch.Tensor:
        return values.gather(0, chosen).squeeze(0)

    index = torch.stack(
        [
            torch.where(plan.index >= 0, plan.index + offset, plan.index)
            for plan, offset in zip(plans, offsets, strict=True)
        ]
    )
    moved = eligible.any(0)
    return GuidancePlan(
        index=torch.where(moved, pick(index), -1),
        score=pick(score),
        weight=torch.where(moved, pick(torch.stack([p.weight for p in plans])), 0.0),
        whole=moved & pick(torch.stack([p.whole for p in plans])),
        concept=moved & pick(concept),
        floor=plans[0].floor,
    )
