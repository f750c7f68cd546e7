"""§18: a reference mask keeps the tokens of the patches it covers."""

from __future__ import annotations

import pytest
import torch

from flexdiffuse.masks import MaskError, patch_grid, token_keep

TOKENS = 1 + 16 * 16  # CLIP ViT-L/14 at 224 pixels


def test_a_mask_of_the_whole_image_keeps_every_token_class_included():
    keep = token_keep(torch.ones(300, 400), (400, 300), TOKENS)
    assert keep.shape == (TOKENS,)
    assert bool(keep.all())


def test_a_mask_of_the_left_half_keeps_the_left_patch_columns_and_drops_the_class_token():
    mask = torch.zeros(224, 224)
    mask[:, :112] = 1
    keep = token_keep(mask, (224, 224), TOKENS)
    grid = keep[1:].reshape(16, 16)
    assert not bool(keep[0])
    assert bool(grid[:, :8].all())
    assert not bool(grid[:, 8:].any())


def test_a_patch_is_kept_from_half_covered_up():
    mask = torch.zeros(224, 224)
    mask[:, :7] = 1  # half of the first patch column (patches are 14 pixels wide)
    assert bool(token_keep(mask, (224, 224), TOKENS)[1:].reshape(16, 16)[:, 0].all())
    mask[:, :6] = 1
    mask[:, 6] = 0
    with pytest.raises(MaskError, match="leaves no patch"):
        token_keep(mask, (224, 224), TOKENS)


def test_the_mask_is_cropped_to_the_centre_square_the_tower_sees():
    mask = torch.zeros(100, 300)
    mask[:, :100] = 1  # only the left third: outside the centre square
    with pytest.raises(MaskError, match="leaves no patch of the image the vision model sees"):
        token_keep(mask, (300, 100), TOKENS)
    mask[:, 100:200] = 1
    assert bool(token_keep(mask, (300, 100), TOKENS).all())


def test_a_mask_of_the_images_shape_at_another_scale_is_resized():
    mask = torch.zeros(150, 200)
    mask[:, :100] = 1
    big = torch.nn.functional.interpolate(mask[None, None], size=(600, 800))[0, 0]
    assert torch.equal(token_keep(mask, (800, 600), TOKENS), token_keep(big, (800, 600), TOKENS))


def test_a_mask_of_another_shape_is_refused_with_both_sizes():
    with pytest.raises(MaskError, match="mask is 300x300 but its image is 400x300"):
        token_keep(torch.ones(300, 300), (400, 300), TOKENS)


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.ones(3, 4, 4), "2-D map"),
        (torch.full((4, 4), 2.0), "between 0 and 1"),
        (torch.full((4, 4), float("nan")), "between 0 and 1"),
    ],
)
def test_a_mask_that_is_no_0_to_1_map_says_so(mask, message):
    with pytest.raises(MaskError, match=message):
        token_keep(mask, (4, 4), TOKENS)


def test_tokens_without_a_square_patch_grid_cannot_be_masked():
    assert patch_grid(257) == 16
    with pytest.raises(MaskError, match="no square patch grid"):
        token_keep(torch.ones(4, 4), (4, 4), 100)
