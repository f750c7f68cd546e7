"""The ComfyUI nodes in the fake ComfyUI: schema, equality with the engine, errors."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from comfy import model_management, utils
from comfy_api.latest import io
from PIL import Image

from flexdiffuse.comfy import guiding, nodes
from flexdiffuse.comfy.inputs import IMAGE_SLOTS, NO_PRESET, STEP_WINDOW
from flexdiffuse.encoder import ImageEncoder
from flexdiffuse.engine import PURE_IMAGE_WARNING, guide, pure_image_guidance
from flexdiffuse.guidance import ConditioningGuide, PartGuide
from flexdiffuse.params import PARAM_SPECS, GuidanceParams, JobParams
from flexdiffuse.presets import PRESETS
from tests.comfyui.conftest import image_batch
from tests.conftest import TINY_IMAGE_SIZE

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a photo of a deer in a dark forest"


def widgets(node) -> dict:
    """The node's widget values as a new workflow has them (their defaults)."""
    return {
        i.id: i.default
        for i in node.define_schema().inputs
        if getattr(i, "default", None) is not None
    }


def run_guide(positive, negative, tower, image, **changes):
    values = widgets(nodes.FlexDiffuseGuide) | changes
    out = nodes.FlexDiffuseGuide.execute(positive, negative, tower, image, **values)
    return out.args


def conditioning(clip, text: str = PROMPT, pooled: bool = False):
    states = clip.encode_from_tokens(clip.tokenize(text))
    extra = {"pooled_output": states[:, -1, 768:].clone()} if pooled else {}
    return [[states, extra]]


def core_tokens(tower, image: torch.Tensor) -> torch.Tensor:
    """The core encoder's tokens of the same picture with the same weights."""
    from transformers import CLIPImageProcessor

    size = {"shortest_edge": TINY_IMAGE_SIZE}
    crop = {"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    encoder = ImageEncoder(tower.model, CLIPImageProcessor(size=size, crop_size=crop), "tiny")
    pixels = (image[0] * 255).round().to(torch.uint8).numpy()
    return encoder(Image.fromarray(pixels, "RGB"))


# ------------------------------------------------------------------ loading and schema


def test_comfyui_loads_the_pack_from_the_root_init_under_its_path_name():
    """ComfyUI imports custom_nodes/<folder>/__init__.py under its path with '.' -> '_x_'."""
    name = str(ROOT).replace(".", "_x_") + "_x_test"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
        assert not hasattr(module, "NODE_CLASS_MAPPINGS")  # else ComfyUI ignores the entrypoint
        extension = asyncio.run(module.comfy_entrypoint())
        listed = asyncio.run(extension.get_node_list())
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(f"{name}.")]:
            del sys.modules[key]
    assert [node.define_schema().node_id for node in listed] == [
        "FlexDiffuseGuide",
        "FlexDiffusePreview",
    ]


@pytest.mark.parametrize("node", nodes.NODES, ids=lambda n: n.__name__)
def test_every_input_has_a_tooltip_and_the_pack_its_category(node):
    schema = node.define_schema()
    assert schema.category == "FlexDiffuse"
    assert schema.description
    missing = [i.id for i in schema.inputs if not i.tooltip]
    assert not missing, f"inputs without a tooltip: {missing}"
    ids = [i.id for i in schema.inputs]
    assert len(ids) == len(set(ids))


def test_the_widgets_are_the_parameter_specs():
    """One spec per parameter: every one but the step window is a widget of the guide node,
    with the spec's label, range and default."""
    inputs = {i.id: i for i in nodes.FlexDiffuseGuide.define_schema().inputs}
    for spec in PARAM_SPECS:
        if spec.name in STEP_WINDOW:
            assert spec.name not in inputs
            continue
        widget = inputs[spec.name]
        assert widget.display_name == spec.label
        assert widget.tooltip == spec.info
        if spec.kind == "float":
            assert (widget.min, widget.max, widget.default) == (
                spec.minimum,
                spec.maximum,
                spec.default,
            )
        elif spec.kind == "choice":
            assert widget.options == list(spec.choices.values())
    assert inputs["preset"].options == [NO_PRESET, *(p.label for p in PRESETS)]
    assert [slot for slot in IMAGE_SLOTS if inputs[slot].optional] == list(IMAGE_SLOTS[1:])


# ------------------------------------------------------------------ the same as the engine


def test_image_tokens_from_comfyuis_vision_model_are_the_core_encoders(vit_l):
    image = image_batch()
    tokens = guiding.image_tokens(vit_l, image)[0]
    assert torch.allclose(tokens, core_tokens(vit_l, image), atol=1e-5)


def test_sd15_guidance_is_the_engines(vit_l, clip_l):
    image = image_batch()
    positive, negative = conditioning(clip_l), conditioning(clip_l, "blurry")
    guided, unguided_negative = run_guide(positive, negative, vit_l, image)
    expected = guide(positive[0][0], core_tokens(vit_l, image), GuidanceParams())
    assert torch.allclose(guided[0][0], expected, atol=1e-5)
    assert not torch.equal(guided[0][0], positive[0][0])
    assert unguided_negative is negative


def test_the_input_conditioning_is_not_changed(vit_l, clip_l):
    positive = conditioning(clip_l)
    before = positive[0][0].clone()
    run_guide(positive, conditioning(clip_l, ""), vit_l, image_batch())
    assert torch.equal(positive[0][0], before)


def test_prompts_longer_than_one_chunk_are_guided_chunk_by_chunk(vit_l, clip_l):
    long_prompt = " ".join(f"word{i}" for i in range(100))
    positive = conditioning(clip_l, long_prompt)
    assert positive[0][0].shape[1] == 154
    guided, _ = run_guide(positive, positive, vit_l, image_batch())
    expected = guide(positive[0][0], core_tokens(vit_l, image_batch()), GuidanceParams())
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_a_preset_sets_its_parameters_over_the_widgets(vit_l, clip_l):
    strong = PRESETS[1]
    positive = conditioning(clip_l)
    guided, _ = run_guide(positive, positive, vit_l, image_batch(), preset=strong.label)
    params = GuidanceParams().replace(**strong.values)
    expected = guide(positive[0][0], core_tokens(vit_l, image_batch()), params)
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_several_images_with_their_weights_and_a_negative_image(vit_l, clip_l):
    first, second, negative_image = image_batch(2), image_batch(seed=1), image_batch(seed=2)
    positive, negative = conditioning(clip_l), conditioning(clip_l, "blurry")
    guided, guided_negative = run_guide(
        positive,
        negative,
        vit_l,
        first,
        image_2=second,
        image_2_weight=0.5,
        negative_image=negative_image,
        negative_weight=0.8,
    )
    tokens = [core_tokens(vit_l, first[i : i + 1]) for i in range(2)] + [core_tokens(vit_l, second)]
    weights = torch.cat(
        [torch.full((len(t),), w) for t, w in zip(tokens, (1, 1, 0.5), strict=True)]
    )
    expected = guide(positive[0][0], torch.cat(tokens), GuidanceParams(), token_weights=weights)
    assert torch.allclose(guided[0][0], expected, atol=1e-5)
    negative_tokens = core_tokens(vit_l, negative_image)
    expected_negative = guide(
        negative[0][0],
        negative_tokens,
        GuidanceParams(),
        token_weights=torch.full((len(negative_tokens),), 0.8),
    )
    assert torch.allclose(guided_negative[0][0], expected_negative, atol=1e-5)


def test_sdxl_both_towers_and_the_pooled_vector(vit_l, vit_bigg, clip_xl):
    image = image_batch()
    positive = conditioning(clip_xl, pooled=True)
    values = widgets(nodes.FlexDiffuseGuide) | {"clip_vision_2": vit_bigg, "pooled": 0.5}
    guided, _ = nodes.FlexDiffuseGuide.execute(positive, positive, vit_l, image, **values).args
    l_tokens, g_tokens = core_tokens(vit_l, image), core_tokens(vit_bigg, image)
    expected = ConditioningGuide(
        GuidanceParams(), (PartGuide(0, l_tokens), PartGuide(768, g_tokens)), g_tokens[0], 0.5
    )
    assert torch.allclose(guided[0][0], expected.apply(positive[0][0]), atol=1e-5)
    pooled = guided[0][1]["pooled_output"]
    assert torch.allclose(pooled, expected.apply_pooled(positive[0][1]["pooled_output"]), atol=1e-5)
    assert not torch.equal(pooled, positive[0][1]["pooled_output"])


def test_sdxl_with_the_vit_l_tower_only_guides_the_vit_l_part(vit_l, clip_xl):
    positive = conditioning(clip_xl, pooled=True)
    guided, _ = run_guide(positive, positive, vit_l, image_batch())
    assert torch.equal(guided[0][0][..., 768:], positive[0][0][..., 768:])
    assert not torch.equal(guided[0][0][..., :768], positive[0][0][..., :768])
    assert torch.equal(guided[0][1]["pooled_output"], positive[0][1]["pooled_output"])


def test_an_empty_prompt_takes_the_image_when_the_clip_is_connected(vit_l, clip_l):
    empty = conditioning(clip_l, "")
    guided, _ = run_guide(empty, empty, vit_l, image_batch(), clip=clip_l)
    expected = pure_image_guidance(empty[0][0], core_tokens(vit_l, image_batch()))
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_mapping_concepts_are_encoded_with_the_graphs_clip(vit_l, clip_l):
    positive = conditioning(clip_l)
    guided, _ = run_guide(
        positive,
        positive,
        vit_l,
        image_batch(),
        clip=clip_l,
        concepts="deer",
        preset="Concepts only",
    )
    concepts = clip_l.encode_from_tokens(clip_l.tokenize("deer"))[0]
    params = GuidanceParams().replace(**PRESETS[-1].values)
    expected = guide(positive[0][0], core_tokens(vit_l, image_batch()), params, concepts)
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


@pytest.mark.parametrize("change", [{"strength": 0.0}, {"image_weight": 0.0}])
def test_weight_zero_leaves_the_conditioning_as_it_is(vit_l, clip_l, change):
    positive = conditioning(clip_l)
    guided, _ = run_guide(positive, positive, vit_l, image_batch(), **change)
    assert torch.equal(guided[0][0], positive[0][0])


def test_a_changed_slider_reuses_the_images_encoding(vit_l, clip_l):
    positive, image = conditioning(clip_l), image_batch(seed=9)
    run_guide(positive, positive, vit_l, image)
    before = vit_l.encodings
    run_guide(positive, positive, vit_l, image, linear=0.9)
    assert vit_l.encodings == before


def test_progress_reaches_its_total(vit_l, clip_l):
    utils.UPDATES.clear()
    positive = conditioning(clip_l)
    run_guide(positive, positive, vit_l, image_batch())
    assert utils.UPDATES[-1][0] == utils.UPDATES[-1][1]


def test_comfyuis_interrupt_stops_the_node(vit_l, clip_l):
    model_management.interrupt_current_processing(True)
    positive = conditioning(clip_l)
    with pytest.raises(model_management.InterruptProcessingException):
        run_guide(positive, positive, vit_l, image_batch())


# ------------------------------------------------------------------ what cannot be guided


def test_a_conditioning_from_no_clip_text_encoder_is_refused(vit_l):
    t5 = [[torch.zeros(1, 77, 4096), {}]]
    with pytest.raises(guiding.GuideError, match="no CLIP text encoder"):
        run_guide(t5, t5, vit_l, image_batch())


def test_a_tower_that_fits_no_part_is_refused(vit_h, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match=r"fits no part.*Load CLIP ViT-L/14"):
        run_guide(positive, positive, vit_h, image_batch())


def test_an_empty_image_batch_is_refused(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match="empty image batch"):
        run_guide(positive, positive, vit_l, torch.zeros(0, 32, 32, 3))


def test_concepts_without_the_clip_input_are_refused(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match="clip input"):
        run_guide(positive, positive, vit_l, image_batch(), concepts="deer")


def test_pooled_guidance_on_sd15_is_refused(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match="SDXL checkpoints only"):
        run_guide(positive, positive, vit_l, image_batch(), pooled=0.5)


def test_a_value_out_of_range_names_the_parameter(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match="Max image guidance"):
        run_guide(positive, positive, vit_l, image_batch(), max_guidance=3.0)


# ------------------------------------------------------------------ the preview


def test_the_preview_shows_the_mapping_picture_and_the_token_table(vit_l, clip_l):
    positive = conditioning(clip_l)
    values = widgets(nodes.FlexDiffusePreview) | {"clip": clip_l, "prompt": PROMPT}
    out = nodes.FlexDiffusePreview.execute(positive, vit_l, image_batch(2), **values)
    pictures, table = out.args
    assert pictures.shape == (2, 224, 224, 3)
    assert float(pictures.min()) >= 0
    assert float(pictures.max()) <= 1
    assert "deer" in table
    assert "move toward the image" in table
    assert out.ui["text"] == (table,)
    assert len(out.ui["images"]) == 2
    params = JobParams().guidance
    moved = (
        (
            guide(
                positive[0][0],
                torch.cat([core_tokens(vit_l, image_batch(2)[i : i + 1]) for i in range(2)]),
                params,
            )
            != positive[0][0]
        )
        .any(-1)[0, 1:]
        .sum()
    )
    assert f"{int(moved)} of 76 prompt positions move" in table


def test_sd2_is_guided_by_the_vit_h_tower(vit_h):
    from comfy.sd import CLIP

    positive = conditioning(CLIP(1024))
    guided, _ = run_guide(positive, positive, vit_h, image_batch())
    expected = guide(positive[0][0], core_tokens(vit_h, image_batch()), GuidanceParams())
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_a_negative_image_alone_guides_only_the_negative(vit_l, clip_l):
    positive, negative = conditioning(clip_l), conditioning(clip_l, "blurry")
    guided, guided_negative = run_guide(
        positive,
        negative,
        vit_l,
        image_batch(),
        image_weight=0.0,
        negative_image=image_batch(seed=3),
        concepts="deer",  # no image guides the prompt: nothing to encode them for
    )
    assert guided is positive
    assert not torch.equal(guided_negative[0][0], negative[0][0])


WIDGETS_AS_SAVED = {
    "FlexDiffuseGuide": ["image_weight", "preset", "strength", "threshold_mult",
                         "threshold_floor", "auto_floor", "clustered", "linear", "max_guidance",
                         "order", "reuse", "concept_threshold", "concepts", "pooled",
                         "negative_weight", "image_2_weight", "image_3_weight", "image_4_weight"],
    "FlexDiffusePreview": ["image_weight", "preset", "strength", "threshold_mult",
                           "threshold_floor", "auto_floor", "clustered", "linear",
                           "max_guidance", "order", "reuse", "concept_threshold", "concepts",
                           "pooled", "image_2_weight", "image_3_weight", "image_4_weight",
                           "prompt"],
}  # fmt: skip


@pytest.mark.parametrize("node", nodes.NODES, ids=lambda n: n.__name__)
def test_saved_workflows_keep_their_widget_order(node):
    """The page stores widget values by position, required inputs first: a new parameter
    goes after these (an optional input), or workflows saved before load shifted."""
    schema = node.define_schema()
    kinds = (io.Float.Input, io.Boolean.Input, io.Combo.Input, io.String.Input)
    widgets = [i for i in schema.inputs if isinstance(i, kinds)]
    order = [i.id for i in widgets if not i.optional] + [i.id for i in widgets if i.optional]
    saved = WIDGETS_AS_SAVED[schema.node_id]
    assert order[: len(saved)] == saved
    assert all(i.optional for i in widgets if i.id in order[len(saved) :])


def test_the_preview_of_an_empty_prompt_says_the_image_replaces_it(vit_l, clip_l):
    empty = conditioning(clip_l, "")
    values = widgets(nodes.FlexDiffusePreview) | {"clip": clip_l}
    _, table = nodes.FlexDiffusePreview.execute(empty, vit_l, image_batch(), **values).args
    assert table.startswith(PURE_IMAGE_WARNING)
