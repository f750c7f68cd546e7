"""The guide builder with recipes (§17), masks (§18) and saved references: what both hosts get."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from flexdiffuse import GuidanceParams, guide
from flexdiffuse.families import SD1
from flexdiffuse.guides import EncodedPart, GuideError, nothing_to_guide, prompt_guide
from flexdiffuse.known_towers import VIT_BIGG, VIT_L
from flexdiffuse.masks import token_keep
from flexdiffuse.params import JobParams
from flexdiffuse.presets import preset_values
from flexdiffuse.preview import dim_masked, explain, explain_part, image_place
from flexdiffuse.recipes import ImageTokens, guide_groups, recipe_params
from flexdiffuse.references import (
    Reference,
    ReferenceError,
    ReferenceImage,
    TowerIdentity,
    list_references,
    reference_images,
    reference_path,
    save_reference,
    thumbnail,
)
from tests.helpers import random_tokens

PART = SD1.parts[0]
TEXT = random_tokens(77, 768, seed=1)
A = random_tokens(257, 768, seed=2)
B = random_tokens(257, 768, seed=3)


def _guided(params: JobParams, *images: ImageTokens) -> torch.Tensor:
    built = prompt_guide(params, [EncodedPart(PART, list(images))], None)
    assert built is not None
    return built.apply(TEXT)


def test_images_of_the_job_recipe_guide_as_before_recipes_existed():
    params = JobParams(image_2_weight=0.5)
    expected = guide(
        TEXT,
        torch.cat([A, B]),
        params.guidance,
        token_weights=torch.cat([torch.ones(257), torch.full((257,), 0.5)]),
    )
    assert torch.equal(_guided(params, ImageTokens(A), ImageTokens(B, 0.5)), expected)


def test_one_preset_recipe_for_every_image_guides_with_the_presets_values():
    params = JobParams()
    style = params.guidance.replace(**preset_values("style"))
    guided = _guided(params, ImageTokens(A, recipe="style"), ImageTokens(B, recipe="Style only"))
    assert torch.equal(guided, guide(TEXT, torch.cat([A, B]), style))


def test_two_recipes_are_combined_and_differ_from_each_alone():
    params = JobParams()
    both = _guided(params, ImageTokens(A, recipe="style"), ImageTokens(B, recipe="strong"))
    groups_expected = guide_groups(
        TEXT,
        [
            _group(A, recipe_params(params.guidance, "style"), "style"),
            _group(B, recipe_params(params.guidance, "strong"), "strong"),
        ],
    )
    assert torch.equal(both, groups_expected)
    assert not torch.equal(both, _guided(params, ImageTokens(A, recipe="style")))
    assert not torch.equal(both, _guided(params, ImageTokens(B, recipe="strong")))


def _group(tokens, params, name):
    from flexdiffuse.recipes import ImageGroup

    return ImageGroup(tokens, params, None, name)


def test_a_mask_drops_the_patches_it_leaves_out():
    mask = torch.zeros(224, 224)
    mask[:, :112] = 1  # the left half
    keep = token_keep(mask, (224, 224), 257)
    guided = _guided(JobParams(), ImageTokens(A, keep=keep))
    assert torch.equal(guided, guide(TEXT, A[keep], GuidanceParams()))
    assert not torch.equal(guided, _guided(JobParams(), ImageTokens(A)))


def test_a_mask_of_the_whole_image_guides_as_no_mask():
    keep = token_keep(torch.ones(300, 200), (200, 300), 257)
    assert torch.equal(
        _guided(JobParams(), ImageTokens(A, keep=keep)), _guided(JobParams(), ImageTokens(A))
    )


def test_an_unknown_recipe_is_a_guide_error_naming_the_recipes():
    with pytest.raises(GuideError, match="Unknown recipe 'sharp'; the recipes are 'job'"):
        _guided(JobParams(), ImageTokens(A, recipe="sharp"))


def test_a_recipe_that_moves_makes_a_job_of_still_sliders_guide_something():
    still = JobParams().replace(linear=0, clustered=0, threshold_mult=0)
    note = nothing_to_guide(still, images=True, negative=False, empty_prompt=False)
    assert note is not None
    assert "guided nothing" in note
    assert (
        nothing_to_guide(
            still, images=True, negative=False, empty_prompt=False, recipes=["job", "style"]
        )
        is None
    )


def test_the_preview_names_image_patch_and_recipe_of_every_move():
    keep = torch.ones(257, dtype=torch.bool)
    keep[0] = keep[5] = False  # a masked patch: never mapped
    built = prompt_guide(
        JobParams(),
        [EncodedPart(PART, [ImageTokens(A, recipe="style"), ImageTokens(B, keep=keep)])],
        None,
    )
    part = built.parts[0]
    reports = explain_part(TEXT, part, built.params)
    moved = [r for r in reports if r.moved]
    assert moved
    assert {r.recipe for r in moved} <= {"Style only", "Job settings"}
    for report in moved:
        image, _, _ = image_place(report, part.per_image, 16)
        recipe = "Style only" if image == 0 else "Job settings"
        assert report.recipe == recipe
        if image == 1:
            assert report.image_token - 257 not in (0, 5)
    assert all(r.recipe == "" for r in reports if not r.moved)


def test_the_preview_of_one_recipe_is_the_plain_explanation():
    built = prompt_guide(JobParams(), [EncodedPart(PART, [ImageTokens(A)])], None)
    reports = explain_part(TEXT, built.parts[0], built.params)
    plain = explain(TEXT, A, GuidanceParams())
    assert [r.image_token for r in reports] == [r.image_token for r in plain]


def test_masked_patches_are_dimmed_and_kept_ones_are_not():
    square = Image.new("RGB", (32, 32), (200, 200, 200))
    keep = torch.ones(1 + 4 * 4, dtype=torch.bool)
    keep[1] = False  # the top-left patch
    dimmed = dim_masked(square, keep)
    assert dimmed.getpixel((2, 2))[0] < 100
    assert dimmed.getpixel((30, 30)) == (200, 200, 200)
    assert dim_masked(square, None) == square


def _reference(recipe="style", towers=(VIT_L,)) -> Reference:
    keep = torch.arange(257) % 2 == 0
    images = (
        ReferenceImage("d0", {t.name: A[:, : t.token_width] for t in towers}, recipe, keep),
        ReferenceImage("d1", {t.name: B[:, : t.token_width] for t in towers}),
    )
    identities = tuple(TowerIdentity.of(t) for t in towers)
    return Reference("board", images, identities, thumbnail([Image.new("RGB", (8, 8))]))


def test_a_reference_in_a_slot_takes_its_weight_and_its_saved_recipe_unless_the_slot_names_one():
    saved = reference_images(_reference(), VIT_L, 0.7)
    assert [(i.weight, i.recipe) for i in saved] == [(0.7, "style"), (0.7, "job")]
    assert torch.equal(saved[0].keep, torch.arange(257) % 2 == 0)
    chosen = reference_images(_reference(), VIT_L, 1.0, "Strong: matches and style")
    assert [i.recipe for i in chosen] == ["strong", "strong"]


def test_a_reference_guides_exactly_as_its_images():
    params = JobParams()
    from_reference = _guided(params, *reference_images(_reference(), VIT_L, 1.0))
    keep = torch.arange(257) % 2 == 0
    from_images = _guided(params, ImageTokens(A, recipe="style", keep=keep), ImageTokens(B))
    assert torch.equal(from_reference, from_images)


def test_a_reference_without_the_checkpoints_tower_is_refused():
    with pytest.raises(ReferenceError, match=r"made with CLIP ViT-L/14.*needs"):
        reference_images(_reference(), VIT_BIGG, 1.0)


def test_reference_names_are_file_names_in_the_folder_and_nothing_else(tmp_path):
    assert reference_path(tmp_path, " my board ") == tmp_path / "my board.safetensors"
    assert reference_path(tmp_path, "x.safetensors") == tmp_path / "x.safetensors"
    for bad in ("", "../up", "a/b", ".hidden", "a\\b"):
        with pytest.raises(ReferenceError, match="is not a reference name"):
            reference_path(tmp_path, bad)


def test_the_reference_list_holds_references_only_and_reads_headers_only(tmp_path):
    from safetensors.torch import save_file

    save_reference(_reference(), reference_path(tmp_path, "board"))
    save_file({"w": torch.zeros(2)}, str(tmp_path / "weights.safetensors"))
    (tmp_path / "broken.safetensors").write_bytes(b"\x00" * 5)
    (tmp_path / "pickled.pt").write_bytes(b"never read")
    assert list_references(tmp_path) == ["board"]
    assert list_references(tmp_path / "missing") == []
