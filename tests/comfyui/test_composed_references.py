"""Issue 21 in the fake ComfyUI: a recipe and a mask per image slot, saved references.

Each node's result is checked against the core's own functions on the same tokens (the
recipes' groups, ``masks.token_keep``, ``references.reference_images``), and every refusal by
its message.
"""

from __future__ import annotations

import folder_paths
import pytest
import torch
from safetensors.torch import save_file

from flexdiffuse.comfy import nodes, reference_nodes
from flexdiffuse.comfy.guiding import GuideError
from flexdiffuse.comfy.reference_nodes import EncodeReference, LoadReference, SaveReference
from flexdiffuse.guidance import ConditioningGuide
from flexdiffuse.guides import EncodedPart, ImageTokens, prompt_guide
from flexdiffuse.masks import token_keep
from flexdiffuse.params import JobParams
from flexdiffuse.references import load_reference
from tests.comfyui.conftest import image_batch, tiny_tower
from tests.comfyui.test_nodes import conditioning, core_tokens, run_guide, run_node, widgets

STYLE, JOB = "Style only", "Job settings"


@pytest.fixture(autouse=True)
def references_folder(tmp_path, monkeypatch):
    """ComfyUI's models folder in ``tmp_path``, the references folder registered anew."""
    monkeypatch.setattr(folder_paths, "models_dir", str(tmp_path / "models"))
    monkeypatch.delitem(folder_paths.folder_names_and_paths, reference_nodes.FOLDER, raising=False)
    return tmp_path / "models" / "FlexDiffuse" / "references"


def core_guided(positive, part, images: list[ImageTokens], **values) -> torch.Tensor:
    """The core's guide of ``positive`` by ``images`` on ``part`` (what both hosts build)."""
    params = JobParams().replace(**values)
    guide = prompt_guide(params, [EncodedPart(part, images)], None)
    assert isinstance(guide, ConditioningGuide)
    return guide.apply(positive[0][0])


def sd15_part():
    from flexdiffuse.families import family_of_width

    return family_of_width(768).parts[0]


def half_mask(size: int = 32) -> torch.Tensor:
    """A MASK ``[1, H, W]`` selecting the picture's left half."""
    mask = torch.zeros(1, size, size)
    mask[..., : size // 2] = 1.0
    return mask


# ------------------------------------------------------------------ a recipe per image


def test_two_images_under_different_recipes_are_the_cores_groups_and_differ_from_each_alone(
    vit_l, clip_l
):
    positive = conditioning(clip_l)
    a, b = image_batch(seed=1), image_batch(seed=2)
    guided, _ = run_node(
        nodes.ImageGuidance,
        positive,
        positive,
        vit_l,
        a,
        image_2=b,
        image_recipe=STYLE,
        image_2_recipe=JOB,
    )
    images = [ImageTokens(core_tokens(vit_l, a), 1.0, "style"), ImageTokens(core_tokens(vit_l, b))]
    assert torch.allclose(guided[0][0], core_guided(positive, sd15_part(), images), atol=1e-5)
    alone_a, _ = run_node(nodes.ImageGuidance, positive, positive, vit_l, a, image_recipe=STYLE)
    alone_b, _ = run_node(nodes.ImageGuidance, positive, positive, vit_l, b)
    assert not torch.equal(guided[0][0], alone_a[0][0])
    assert not torch.equal(guided[0][0], alone_b[0][0])
    again, _ = run_node(
        nodes.ImageGuidance, positive, positive, vit_l, a, image_2=b, image_recipe=STYLE
    )
    assert torch.equal(guided[0][0], again[0][0])


def test_every_recipe_at_job_settings_is_the_path_before_recipes(vit_l, clip_l):
    positive = conditioning(clip_l)
    a, b = image_batch(seed=1), image_batch(seed=2)
    named, _ = run_guide(
        positive, positive, vit_l, a, image_2=b, image_recipe=JOB, image_2_recipe="job"
    )
    tokens = torch.cat([core_tokens(vit_l, a), core_tokens(vit_l, b)])
    from flexdiffuse.engine import guide

    expected = guide(positive[0][0], tokens, JobParams().guidance)
    assert torch.allclose(named[0][0], expected, atol=1e-5)


def test_an_unknown_recipe_is_refused_naming_the_input(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(GuideError, match=r"image_2_recipe \(Image 2 recipe\).*Style only"):
        run_guide(positive, positive, vit_l, image_batch(), image_2=image_batch(seed=1),
                  image_2_recipe="Sketch")  # fmt: skip


# ------------------------------------------------------------------ masks


def test_a_mask_of_the_whole_image_guides_exactly_as_no_mask(vit_l, clip_l):
    positive = conditioning(clip_l)
    plain, _ = run_guide(positive, positive, vit_l, image_batch())
    whole, _ = run_guide(positive, positive, vit_l, image_batch(), image_mask=torch.ones(32, 32))
    assert torch.equal(plain[0][0], whole[0][0])


def test_a_masked_image_takes_only_the_kept_patches_as_the_core_keeps_them(vit_l, clip_l):
    positive = conditioning(clip_l)
    image = image_batch()
    masked, _ = run_guide(positive, positive, vit_l, image, image_mask=half_mask())
    tokens = core_tokens(vit_l, image)
    keep = token_keep(half_mask()[0], (32, 32), len(tokens))
    expected = core_guided(positive, sd15_part(), [ImageTokens(tokens, 1.0, "job", keep)])
    assert torch.allclose(masked[0][0], expected, atol=1e-5)
    plain, _ = run_guide(positive, positive, vit_l, image)
    assert not torch.equal(masked[0][0], plain[0][0])


def test_one_mask_per_picture_of_a_batch_or_one_for_all(vit_l, clip_l):
    positive = conditioning(clip_l)
    pictures = image_batch(2)
    one, _ = run_guide(positive, positive, vit_l, pictures, image_mask=half_mask()[0])
    each, _ = run_guide(positive, positive, vit_l, pictures, image_mask=half_mask().repeat(2, 1, 1))
    assert torch.equal(one[0][0], each[0][0])


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        (torch.zeros(1, 64, 64), r"image_mask is empty \(all 0\).*Mask Editor"),
        (torch.ones(3, 32, 32), "has 3 masks for 1 pictures"),
        (torch.ones(32, 16), r"image_mask: .*16x32 but its image is 32x32"),
        (torch.full((32, 32), 2.0), "between 0 and 1"),
        (torch.ones(1, 1, 32, 32), r"must be a MASK \(\[B, H, W\] or \[H, W\]\)"),
    ],
    ids=["empty", "count", "shape", "range", "not a mask"],
)
def test_a_bad_mask_is_refused_with_the_cores_message(vit_l, clip_l, mask, message):
    positive = conditioning(clip_l)
    with pytest.raises(GuideError, match=message):
        run_guide(positive, positive, vit_l, image_batch(), image_mask=mask)


def test_a_mask_that_leaves_no_patch_says_so(vit_l, clip_l):
    positive = conditioning(clip_l)
    corner = torch.zeros(32, 32)
    corner[:2, :2] = 1.0
    with pytest.raises(GuideError, match="leaves no patch"):
        run_guide(positive, positive, vit_l, image_batch(), image_mask=corner)


def test_the_preview_dims_masked_patches_and_names_each_tokens_recipe(vit_l, clip_l):
    positive = conditioning(clip_l)
    sockets = {"positive": positive, "clip_vision": vit_l, "clip": clip_l, "prompt": "a deer"}
    values = widgets(nodes.MappingPreview) | sockets
    a, b = image_batch(seed=1), image_batch(seed=2)
    plain, _ = nodes.MappingPreview.execute(image=a, image_2=b, **values).args
    composed = values | {"image_mask": half_mask(), "image_2_recipe": STYLE}
    shown, table = nodes.MappingPreview.execute(image=a, image_2=b, **composed).args
    right = shown[0, :, 112:]  # the first picture's right half: masked out, dimmed
    assert float(right.mean()) < 0.5 * float(plain[0, :, 112:].mean())
    assert f"image 1: {JOB}, masked (8 of 16 patches kept); image 2: {STYLE}" in table
    assert f"({STYLE})" in table or f"({JOB})" in table


# ------------------------------------------------------------------ saved references


def encode(tower, images, **values):
    return EncodeReference.execute(images=images, clip_vision=tower, **({"recipe": JOB} | values))


def saved(reference, name="style"):
    SaveReference.execute(reference=reference.args[0], name=name)
    return LoadReference.execute(reference=name).args[0]


def test_a_saved_reference_guides_exactly_as_its_images_with_no_vision_model(vit_l, clip_l):
    positive = conditioning(clip_l)
    images = image_batch(2, seed=5)
    reference = saved(encode(vit_l, images, recipe=STYLE, mask=half_mask()))
    from_images, _ = run_node(
        nodes.ImageGuidance, positive, positive, vit_l, images, image_recipe=STYLE,
        image_mask=half_mask(), image_weight=0.7,
    )  # fmt: skip
    before = vit_l.encodings
    from_reference, _ = run_node(
        nodes.ImageGuidance, positive, positive, None, reference, image_weight=0.7
    )
    assert vit_l.encodings == before
    assert torch.equal(from_reference[0][0], from_images[0][0])


def test_the_slots_recipe_overrides_the_saved_one_unless_it_is_job_settings(vit_l, clip_l):
    positive = conditioning(clip_l)
    image = image_batch(seed=6)
    reference = saved(encode(vit_l, image, recipe=STYLE))
    strong = "Strong: matches and style"
    overridden, _ = run_node(
        nodes.ImageGuidance, positive, positive, None, reference, image_recipe=strong
    )
    expected, _ = run_node(
        nodes.ImageGuidance, positive, positive, vit_l, image, image_recipe=strong
    )
    assert torch.equal(overridden[0][0], expected[0][0])


def test_a_reference_and_an_image_together_and_the_reference_file(vit_l, clip_l, references_folder):
    positive = conditioning(clip_l)
    a, b = image_batch(seed=1), image_batch(seed=2)
    reference = saved(encode(vit_l, a, recipe=STYLE), "style from a")
    assert (references_folder / "style from a.safetensors").is_file()
    assert reference_nodes.saved_names() == ["style from a"]
    loaded = load_reference(references_folder / "style from a.safetensors")
    assert loaded.name == "style from a"
    mixed, _ = run_node(nodes.ImageGuidance, positive, positive, vit_l, reference, image_2=b)
    images, _ = run_node(
        nodes.ImageGuidance, positive, positive, vit_l, a, image_2=b, image_recipe=STYLE
    )
    assert torch.equal(mixed[0][0], images[0][0])


def test_an_sdxl_reference_guides_both_halves_and_the_pooled_vector(vit_l, vit_bigg, clip_xl):
    positive = conditioning(clip_xl, pooled=True)
    image = image_batch(seed=3)
    reference = EncodeReference.execute(
        images=image, clip_vision=vit_l, recipe=JOB, clip_vision_2=vit_bigg
    )
    reference = saved(reference, "xl")
    values = {"pooled": 0.5}
    from_images, _ = run_guide(positive, positive, vit_l, image, clip_vision_2=vit_bigg, **values)
    from_reference, _ = run_guide(positive, positive, None, reference, **values)
    assert torch.equal(from_reference[0][0], from_images[0][0])
    pooled = from_reference[0][1]["pooled_output"]
    assert torch.equal(pooled, from_images[0][1]["pooled_output"])


def test_a_reference_made_with_another_tower_is_refused_by_the_conditionings_family(vit_l):
    from comfy.sd import CLIP

    reference = saved(encode(vit_l, image_batch()), "vit-l")
    sd2 = conditioning(CLIP(1024))
    with pytest.raises(GuideError, match=r"made with CLIP ViT-L/14.*needs OpenCLIP ViT-H/14"):
        run_guide(sd2, sd2, None, reference)


def test_pooled_guidance_from_a_vit_l_reference_says_to_encode_it_with_vit_bigg(vit_l, clip_xl):
    reference = saved(encode(vit_l, image_batch()), "vit-l only")
    positive = conditioning(clip_xl, pooled=True)
    with pytest.raises(GuideError, match="encode the reference again with it"):
        run_guide(positive, positive, None, reference, pooled=0.5)


def test_an_image_without_a_vision_model_is_refused_before_anything(clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(GuideError, match="connect a Load CLIP Vision node to clip_vision"):
        run_guide(positive, positive, None, image_batch())


def test_a_mask_on_a_reference_slot_is_refused(vit_l, clip_l):
    positive = conditioning(clip_l)
    reference = saved(encode(vit_l, image_batch()))
    with pytest.raises(GuideError, match="keeps the mask it was encoded with"):
        run_guide(positive, positive, None, reference, image_mask=half_mask())


def test_images_added_to_a_reference_are_saved_as_one(vit_l, clip_l):
    positive = conditioning(clip_l)
    a, b = image_batch(seed=1), image_batch(seed=2)
    style = encode(vit_l, a, recipe=STYLE).args[0]
    pair = saved(encode(vit_l, b, add_to=style), "pair")
    assert [image.recipe for image in pair.images] == ["style", "job"]
    assert tuple(pair.thumbnail.shape) == (64, 128, 3)
    from_pair, _ = run_node(nodes.ImageGuidance, positive, positive, None, pair)
    from_images, _ = run_node(
        nodes.ImageGuidance, positive, positive, vit_l, a, image_2=b, image_recipe=STYLE
    )
    assert torch.equal(from_pair[0][0], from_images[0][0])


def test_adding_images_encoded_by_other_towers_is_refused(vit_l, vit_bigg):
    style = encode(vit_l, image_batch()).args[0]
    with pytest.raises(GuideError, match="connect the same CLIP vision models"):
        encode(vit_bigg, image_batch(), add_to=style)


@pytest.mark.parametrize("name", ["", "../escape", "a/b", "  "])
def test_a_bad_reference_name_is_refused(vit_l, name):
    reference = encode(vit_l, image_batch()).args[0]
    with pytest.raises(GuideError, match="is not a reference name"):
        SaveReference.execute(reference=reference, name=name)


def test_the_load_node_lists_only_references_and_says_what_is_wrong_with_a_file(
    vit_l, references_folder
):
    saved(encode(vit_l, image_batch()), "good")
    save_file({"weight": torch.zeros(2)}, str(references_folder / "model.safetensors"))
    (references_folder / "broken.safetensors").write_bytes(b"not a safetensors file")
    (inputs,) = LoadReference.define_schema().inputs
    assert inputs.options == ["good"]
    with pytest.raises(GuideError, match="There is no saved reference 'gone'"):
        LoadReference.execute(reference="gone")
    with pytest.raises(GuideError, match="not a FlexDiffuse reference"):
        LoadReference.execute(reference="model")
    with pytest.raises(GuideError, match="truncated or corrupt"):
        LoadReference.execute(reference="broken")


def test_a_reference_saved_again_under_its_name_is_loaded_again(vit_l):
    saved(encode(vit_l, image_batch(seed=1)), "again")
    first = LoadReference.fingerprint_inputs(reference="again")
    saved(encode(vit_l, image_batch(seed=2)), "again")
    assert LoadReference.fingerprint_inputs(reference="again") != first


def test_the_preview_shows_a_references_thumbnail_squares(vit_l, clip_l):
    positive = conditioning(clip_l)
    reference = saved(encode(vit_l, image_batch(2, seed=4)))
    values = widgets(nodes.MappingPreview) | {"positive": positive, "image": reference}
    pictures, table = nodes.MappingPreview.execute(**values).args
    assert pictures.shape == (2, 224, 224, 3)
    assert "prompt positions move toward the image" in table


def test_the_encode_node_refuses_two_towers_of_one_kind(vit_l):
    other = tiny_tower(768, seed=11)
    with pytest.raises(GuideError, match="Both CLIP vision models are CLIP ViT-L/14"):
        EncodeReference.execute(images=image_batch(), clip_vision=vit_l, recipe=JOB,
                                clip_vision_2=other)  # fmt: skip
