"""§17: images with recipes of their own, each group planned alone, one move per position."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from flexdiffuse import GuidanceParams, guide
from flexdiffuse.presets import PRESETS
from flexdiffuse.recipes import (
    JOB_RECIPE,
    ImageGroup,
    group_by_recipe,
    guide_groups,
    recipe_params,
)
from tests.helpers import guidance_inputs, guidance_params, random_tokens
from tests.oracle import CHUNK, oracle_guide_groups


@st.composite
def recipe_groups(draw):
    """Text, 2-3 images split from one token set, a recipe and a weight per image."""
    text, image, concepts = draw(guidance_inputs())
    count = draw(st.integers(2, 3))
    if len(image) < count:
        image = torch.cat([image] * count)
    cuts = sorted(
        draw(st.sets(st.integers(1, len(image) - 1), min_size=count - 1, max_size=count - 1))
    )
    tokens = list(torch.tensor_split(image, cuts))
    pool = draw(st.lists(guidance_params, min_size=1, max_size=count))
    recipes = [draw(st.sampled_from(pool)) for _ in tokens]
    weights = draw(st.lists(st.sampled_from([1.0, 0.5, 2.0]), min_size=count, max_size=count))
    return text, tokens, recipes, weights, concepts


@settings(max_examples=40, deadline=None)
@given(recipe_groups())
def test_groups_of_different_recipes_match_the_oracle(case):
    text, tokens, recipes, weights, concepts = case
    groups = group_by_recipe(tokens, recipes, weights)
    expected = oracle_guide_groups(
        text, [(g.image_tokens, g.params, g.token_weights) for g in groups], concepts
    )
    torch.testing.assert_close(guide_groups(text, groups, concepts), expected, atol=1e-5, rtol=0)


@settings(max_examples=25, deadline=None)
@given(guidance_inputs(), guidance_params, st.integers(2, 4))
def test_one_recipe_for_every_image_is_the_plain_method_exactly(inputs, params, count):
    text, image, concepts = inputs
    tokens = list(torch.tensor_split(image, min(count, len(image))))
    groups = group_by_recipe(tokens, [params] * len(tokens))
    assert len(groups) == 1
    assert torch.equal(guide_groups(text, groups, concepts), guide(text, image, params, concepts))


def test_images_of_one_recipe_are_grouped_in_input_order():
    a, b, c = (random_tokens(3, 8, seed=s) for s in range(3))
    style, subject = GuidanceParams(linear=0.5), GuidanceParams(linear=0.0, threshold_mult=0.5)
    groups = group_by_recipe([a, b, c], [style, subject, style], [1.0, 1.0, 2.0])
    assert [g.params for g in groups] == [style, subject]
    assert torch.equal(groups[0].image_tokens, torch.cat([a, c]))
    assert torch.equal(groups[0].token_weights, torch.tensor([1.0] * 3 + [2.0] * 3))
    assert groups[1].token_weights is None  # all 1: the exact plain path


def _aligned_case():
    """A prompt whose position 1 is nearly image A's token 0 and position 2 is image B's."""
    width = 16
    a, b = random_tokens(4, width, seed=1), random_tokens(4, width, seed=2)
    text = random_tokens(CHUNK, width, seed=3)
    text[1], text[2] = a[0] + 0.01, b[0] + 0.01
    return text, a, b


def test_each_position_takes_the_best_aligned_group_that_moves_it():
    text, a, b = _aligned_case()
    moves = GuidanceParams(threshold_mult=0.5, threshold_floor=0.5, linear=0, clustered=0)
    still = GuidanceParams(threshold_mult=0, linear=0, clustered=0, max_guidance=0)
    both = guide_groups(text, [ImageGroup(a, moves), ImageGroup(b, moves)])
    assert not torch.equal(both[1], text[1])
    assert not torch.equal(both[2], text[2])
    only_a = guide_groups(text, [ImageGroup(a, moves), ImageGroup(b, still)])
    assert torch.equal(only_a[2], text[2])  # B's recipe moves nothing: A does not take it
    assert torch.equal(only_a, guide(text, a, moves))


def test_a_mapping_concept_wins_over_a_better_aligned_plain_move():
    text, a, b = _aligned_case()
    concepts = random_tokens(CHUNK, 16, seed=4)
    concepts[1] = text[1].clone()  # the concept names position 1's word
    concept_only = GuidanceParams(threshold_mult=0, linear=0, clustered=0, concept_threshold=0.5)
    # A's recipe maps no concept (a score never exceeds 1) but moves every position.
    plain = GuidanceParams(
        threshold_mult=1, threshold_floor=0, linear=0, clustered=0, concept_threshold=1
    )
    assert not torch.equal(guide(text, a, plain, concepts)[1], text[1])
    mapped = guide(text, b, concept_only, concepts)
    assert not torch.equal(mapped[1], text[1])  # B's concept decides position 1 alone
    combined = guide_groups(text, [ImageGroup(a, plain), ImageGroup(b, concept_only)], concepts)
    assert torch.equal(combined[1], mapped[1])


def test_no_group_is_an_error_that_says_so():
    with pytest.raises(ValueError, match="at least one image group"):
        guide_groups(random_tokens(CHUNK, 8), [])


def test_a_preset_recipe_sets_its_fields_and_keeps_the_jobs_strength_and_threshold():
    job = GuidanceParams(strength=1.5, concept_threshold=0.7, linear=0.9)
    for preset in PRESETS:
        params = recipe_params(job, preset.label)
        assert params.strength == 1.5
        assert params.concept_threshold == 0.7
        assert {name: getattr(params, name) for name in preset.values} == dict(preset.values)
    assert recipe_params(job, JOB_RECIPE) is job
    assert recipe_params(job, None) is job


def test_an_unknown_recipe_names_the_presets():
    with pytest.raises(ValueError, match="Unknown recipe 'sharp'; the recipes are"):
        recipe_params(GuidanceParams(), "sharp")
