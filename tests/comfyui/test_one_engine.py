"""ComfyUI decides as the webui does (the core's one rule each) and says what it refuses.

The refiner, the empty prompt, presets against named values, the tower identified before
any encoding, and every message of issue 22 part 3, through ``guiding.guide_conditionings``
(the guide node's whole job) on the fake ComfyUI. tests/webui/test_one_engine.py checks the
same behaviours in every fake webui host.
"""

from __future__ import annotations

import copy

import pytest
import torch
from comfy.clip_vision import ClipVisionModel
from comfy.sd import CLIP

from flexdiffuse.comfy import guiding, mapping
from flexdiffuse.comfy.guiding import GuideError, GuideInputs, Steps, WeightedImages
from flexdiffuse.params import JobParams
from flexdiffuse.presets import job_params, preset_values
from tests.comfyui.conftest import image_batch, tiny_tower

PROMPT = "a photo of a deer in a dark forest"


def conditioning(clip, text: str = PROMPT, pooled: bool = False):
    states = clip.encode_from_tokens(clip.tokenize(text))
    extra = {"pooled_output": states[:, -1, -1280:].clone()} if pooled else {}
    return [[states, extra]]


def guide(positive, towers, negative=None, negative_image=None, clip=None, **values):
    params = JobParams().replace(**values)
    images = (WeightedImages(image_batch(), params.image_weight),)
    neg = (
        WeightedImages(negative_image, params.negative_weight)
        if negative_image is not None
        else None
    )
    inputs = GuideInputs(params, tuple(towers), images, neg, clip)
    return guiding.guide_conditionings(inputs, positive, negative, Steps())


# ---------------------------------------------------------------- one rule per behaviour


def test_the_sdxl_refiner_is_guided_by_the_vit_bigg_tower_and_its_pooled_vector(vit_bigg):
    refiner = CLIP(1280, key="g")
    positive = conditioning(refiner, pooled=True)
    guided, _ = guide(positive, [vit_bigg], pooled=0.5)
    assert not torch.equal(guided[0][0], positive[0][0])
    assert not torch.equal(guided[0][1]["pooled_output"], positive[0][1]["pooled_output"])


def test_the_sdxl_refiner_refuses_the_vit_l_tower_before_encoding():
    vit_l = tiny_tower(768, seed=10)  # a tower of its own: no encoding cached
    with pytest.raises(GuideError, match=r"fits no part of this SDXL refiner.*ViT-bigG"):
        guide(conditioning(CLIP(1280, key="g")), [vit_l])
    assert vit_l.encodings == 0


def test_an_empty_prompt_is_told_by_its_states_and_takes_the_image(vit_l, clip_l):
    for text in ("", "   "):
        positive = conditioning(clip_l, text)
        guided, _ = guide(
            positive,
            [vit_l],
            clip=clip_l,
            max_guidance=0.0,
            linear=0.0,
            clustered=0.0,
            threshold_mult=0.0,
        )
        assert not torch.equal(guided[0][0], positive[0][0]), text


def test_named_values_override_a_preset():
    strong = preset_values("strong")
    params = job_params({"linear": 0.3}, "strong")
    assert params.get("linear") == 0.3
    assert params.get("max_guidance") == strong["max_guidance"]
    assert job_params({}, None) == JobParams()


# ---------------------------------------------------------------- what the node says


def test_concepts_only_without_concepts_is_refused_saying_it_guides_nothing(vit_l, clip_l):
    with pytest.raises(GuideError, match=r"guided nothing.*Name the concepts"):
        guide(conditioning(clip_l), [vit_l], clip=clip_l, **preset_values("concepts"))


def test_the_same_tower_twice_on_sd15_is_named_without_sdxl_advice(vit_l, clip_l):
    with pytest.raises(GuideError) as refused:
        guide(conditioning(clip_l), [vit_l, vit_l])
    assert str(refused.value) == "Both CLIP vision models are CLIP ViT-L/14: connect it once."


def test_the_same_tower_twice_on_sdxl_names_the_other_tower(vit_l, clip_xl):
    with pytest.raises(GuideError, match="connect it once and OpenCLIP ViT-bigG/14 as the other"):
        guide(conditioning(clip_xl), [vit_l, vit_l])


def test_a_bad_negative_conditioning_is_named_as_the_negative_input(vit_l, clip_l):
    with pytest.raises(GuideError, match="negative input needs a CONDITIONING"):
        guide(conditioning(clip_l), [vit_l], negative=[], negative_image=image_batch())
    with pytest.raises(GuideError, match="negative conditioning has token width 24"):
        guide(
            conditioning(clip_l),
            [vit_l],
            negative=conditioning(CLIP()),
            negative_image=image_batch(),
        )


def test_a_tower_that_fits_no_part_is_refused_before_encoding(clip_l):
    vit_h = tiny_tower(1024, seed=11)
    with pytest.raises(GuideError, match=r"OpenCLIP ViT-H/14, which fits no part of this SD 1\.x"):
        guide(conditioning(clip_l), [vit_h])
    assert vit_h.encodings == 0


def test_a_tower_without_its_projection_is_refused_not_taken_for_another():
    # ComfyUI loads a file without visual_projection.weight with an identity in its place.
    tower = tiny_tower(768, seed=5)
    tower.model.visual_projection = torch.nn.Identity()
    with pytest.raises(GuideError, match="has no visual projection"):
        guide(conditioning(CLIP(1024)), [tower])
    assert tower.encodings == 0


@pytest.mark.parametrize("model_type", ["siglip_vision_model", "dinov2"])
def test_a_vision_model_that_is_not_clip_is_refused_by_name(clip_l, model_type):
    other = tiny_tower(768, seed=12)
    other.model_type = model_type
    with pytest.raises(GuideError, match=f"is a {model_type.replace('_', ' ')}, not a CLIP"):
        guide(conditioning(clip_l), [other])
    assert other.encodings == 0


def test_pooled_guidance_without_the_bigg_tower_is_refused_before_encoding(clip_xl):
    vit_l = tiny_tower(768, seed=13)
    with pytest.raises(GuideError, match=r"needs the OpenCLIP ViT-bigG/14.*clip_vision_2"):
        guide(conditioning(clip_xl, pooled=True), [vit_l], pooled=0.5)
    assert vit_l.encodings == 0


def test_a_reloaded_tower_reuses_the_encodings_of_the_same_pictures(clip_l):
    first = tiny_tower(768, seed=7)
    guide(conditioning(clip_l), [first])
    assert first.encodings == 1
    # ComfyUI dropped the loader's output (the node bypassed for a run) and loads it again.
    again = ClipVisionModel(copy.deepcopy(first.model))
    guide(conditioning(clip_l), [again])
    assert again.encodings == 0
    other = tiny_tower(768, seed=8)  # another tower of the same kind encodes anew
    guide(conditioning(clip_l), [other])
    assert other.encodings == 1


def preview_table(clip, text, towers, **values):
    """The Mapping Preview's token table of ``text`` (the node's own steps, on the core)."""
    params = JobParams().replace(**values)
    inputs = GuideInputs(params, tuple(towers), (WeightedImages(image_batch(), 1.0),), None, clip)
    positive = conditioning(clip, text)
    width = guiding.conditioning_width(positive)
    encoded = guiding.encode_towers(inputs, width, Steps())
    prompt = guiding.prompt_guide(params, encoded, None)
    pure = guiding.is_empty_prompt(positive[0][0], guiding.empty_prompt_states(clip))
    reports = mapping.explain_guide(positive[0][0][0], prompt, pure)[-1]
    labels = mapping.token_labels(clip, text)
    recipes = [image.recipe for image in encoded[-1].images]
    return mapping.render_table(reports, labels, prompt.parts[-1], recipes)


def test_the_preview_of_an_empty_prompt_shows_what_the_guide_node_does(vit_l, clip_l):
    table = preview_table(clip_l, "", [vit_l])
    assert "The prompt is empty: 76 of 76 prompt positions take the image." in table
    assert "replaced by it (empty prompt)" in table
    assert "toward it" not in table


def test_the_sdxl_preview_folds_the_vit_bigg_tokenizers_padding(vit_l, vit_bigg, clip_xl):
    table = preview_table(clip_xl, "a deer", [vit_l, vit_bigg])
    assert " ! " not in table
    assert "4-76  (padding:" in table
