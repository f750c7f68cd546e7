"""The ComfyUI nodes in the fake ComfyUI: schema, equality with the engine, errors."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import json
import logging
import re
import sys
from pathlib import Path

import pytest
import torch
from comfy import model_management, utils
from comfy_api.v0_0_2 import io
from PIL import Image

from flexdiffuse.comfy import guiding, nodes
from flexdiffuse.comfy.inputs import (
    EXPERT_SPECS,
    IMAGE_SLOTS,
    NO_PRESET,
    PREVIEW_SKIPS,
    STEP_WINDOW,
)
from flexdiffuse.comfy.reference_nodes import REFERENCE_NODES
from flexdiffuse.encoder import ImageEncoder
from flexdiffuse.engine import PURE_IMAGE_WARNING, guide, pure_image_guidance
from flexdiffuse.guidance import ConditioningGuide, PartGuide
from flexdiffuse.params import PARAM_SPECS, GuidanceParams, JobParams
from flexdiffuse.presets import PRESET_FIELDS, PRESETS
from tests.comfyui.conftest import image_batch
from tests.conftest import TINY_IMAGE_SIZE
from tests.live_comfy.workflows import input_specs, is_widget

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a photo of a deer in a dark forest"


def widgets(node) -> dict:
    """The node's widget values as a new workflow has them (their defaults)."""
    return {
        i.id: i.default
        for i in node.define_schema().inputs
        if getattr(i, "default", None) is not None
    }


def socket_names(node) -> tuple[str, ...]:
    """The sockets a test gives first, in order: the conditioning(s), the tower, the image."""
    ids = {i.id for i in node.define_schema().inputs}
    return ("positive", *(["negative"] if "negative" in ids else []), "clip_vision", "image")


def run_node(node, *sockets, **changes):
    """The node's outputs with its widgets at their defaults but ``changes``; ``sockets`` are
    the conditioning(s), the tower and the image, passed by name as ComfyUI passes them."""
    named = dict(zip(socket_names(node), sockets, strict=False))
    return node.execute(**named, **(widgets(node) | changes)).args


def run_guide(positive, negative, tower, image, **changes):
    """The Advanced node: every parameter by its name."""
    return run_node(nodes.ImageGuidanceAdvanced, positive, negative, tower, image, **changes)


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
        "FlexDiffuseImageGuidance",
        "FlexDiffuseImageGuidanceAdvanced",
        "FlexDiffuseMappingPreview",
        "FlexDiffuseMappingPreviewAdvanced",
        "FlexDiffuseEncodeReference",
        "FlexDiffuseSaveReference",
        "FlexDiffuseLoadReference",
        "FlexDiffuseGuide",
        "FlexDiffusePreview",
    ]


def test_a_comfyui_without_the_versioned_node_api_gets_one_log_line_naming_the_version(
    monkeypatch, caplog
):
    """ComfyUI logs a pack's import failure with a traceback; a too old ComfyUI gets a line
    that says which version to install instead, and no entry point to call."""
    monkeypatch.setitem(sys.modules, "comfy_api.v0_0_2", None)  # import raises ImportError
    name = str(ROOT).replace(".", "_x_") + "_x_old"
    spec = importlib.util.spec_from_file_location(name, ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    with caplog.at_level(logging.ERROR):
        spec.loader.exec_module(module)
    assert not hasattr(module, "comfy_entrypoint")
    assert [r.getMessage() for r in caplog.records if "FlexDiffuse needs ComfyUI" in r.message]
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"ComfyUI {module.REQUIRED_COMFYUI} or newer" in line
    assert "comfy_api.v0_0_2" in line


def test_the_registry_metadata_names_the_comfyui_the_pack_needs():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    tool_comfy = pyproject.split("[tool.comfy]\n", 1)[1].split("\n[", 1)[0]
    spec = importlib.util.spec_from_file_location("flexdiffuse_root", ROOT / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    line = re.search(r'^requires-comfyui = "(.*)"$', tool_comfy, re.MULTILINE)
    assert line is not None
    assert line.group(1) == f">={module.REQUIRED_COMFYUI}"


NEW_NODES = [n for n in nodes.NODES if not n.define_schema().is_deprecated]
GUIDANCE_NODES = [n for n in nodes.NODES if n not in REFERENCE_NODES]
"""The nodes that guide or preview, the first release's among them."""
SIMPLE = [nodes.ImageGuidance, nodes.MappingPreview]
ADVANCED = [nodes.ImageGuidanceAdvanced, nodes.MappingPreviewAdvanced]


@pytest.mark.parametrize("node", nodes.NODES, ids=lambda n: n.__name__)
def test_every_input_has_a_tooltip_and_the_pack_comfyuis_category_path(node):
    schema = node.define_schema()
    assert schema.category == "conditioning/flexdiffuse"
    assert schema.description
    missing = [i.id for i in schema.inputs if not i.tooltip]
    assert not missing, f"inputs without a tooltip: {missing}"
    ids = [i.id for i in schema.inputs]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("node", NEW_NODES, ids=lambda n: n.__name__)
def test_search_finds_the_nodes_by_what_users_call_an_image_prompt(node):
    aliases = node.define_schema().search_aliases
    wanted = ["style"]
    if "Guidance" in node.__name__:
        wanted += ["image prompt", "reference", "ipadapter"]
    assert set(wanted) <= set(aliases)


def test_the_first_releases_nodes_are_deprecated_and_only_they():
    deprecated = [n.define_schema().node_id for n in nodes.NODES if n.define_schema().is_deprecated]
    assert deprecated == ["FlexDiffuseGuide", "FlexDiffusePreview"]
    for node in (nodes.FlexDiffuseGuide, nodes.FlexDiffusePreview):
        assert "deprecated" in node.define_schema().display_name


@pytest.mark.parametrize("node", SIMPLE, ids=lambda n: n.__name__)
def test_a_simple_node_shows_no_widget_its_preset_overrides(node):
    """The preset sets its values first, and the node names only values no preset sets: every
    widget shown counts."""
    inputs = {i.id: i for i in node.define_schema().inputs}
    assert inputs["preset"].options == [p.label for p in PRESETS]
    assert NO_PRESET not in inputs["preset"].options
    assert not set(PRESET_FIELDS) & set(inputs)
    slots = {f"{slot}_{value}" for slot in IMAGE_SLOTS for value in ("weight", "recipe")}
    shown = {name for name, i in inputs.items() if getattr(i, "default", None) is not None}
    assert shown - slots - {"negative_weight", "prompt"} == {"preset", "strength", "concepts"}


@pytest.mark.parametrize("node", ADVANCED, ids=lambda n: n.__name__)
def test_an_advanced_node_has_every_parameter_and_no_preset(node):
    inputs = {i.id: i for i in node.define_schema().inputs}
    assert "preset" not in inputs
    skip = STEP_WINDOW if node is nodes.ImageGuidanceAdvanced else PREVIEW_SKIPS
    assert {s.name for s in PARAM_SPECS if s.name not in skip} <= set(inputs)
    advanced = {name for name, i in inputs.items() if i.advanced}
    assert advanced == set(EXPERT_SPECS)


@pytest.mark.parametrize("node", NEW_NODES, ids=lambda n: n.__name__)
def test_execute_takes_each_input_by_its_name_with_types(node):
    """Typed signatures as ComfyUI's own V3 nodes write them: every socket and simple widget a
    named, annotated parameter; an Advanced node's spec widgets arrive as ``**values``."""
    parameters = inspect.signature(node.execute).parameters
    named = {n for n, p in parameters.items() if p.kind != p.VAR_KEYWORD}
    inputs = {i.id: i for i in node.define_schema().inputs}
    specs = {s.name for s in PARAM_SPECS}
    if node in ADVANCED:
        assert "values" in parameters
        assert named == {n for n in inputs if n not in specs}
    else:
        assert named == set(inputs)
    assert all(parameters[n].annotation is not inspect.Parameter.empty for n in named)
    optional = {n for n, i in inputs.items() if i.optional}
    assert all(parameters[n].default is not inspect.Parameter.empty for n in optional & named)


def test_the_widgets_are_the_parameter_specs():
    """One spec per parameter: every one but the step window is a widget of the Advanced
    node, with the spec's label, range and default."""
    inputs = {i.id: i for i in nodes.ImageGuidanceAdvanced.define_schema().inputs}
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


@pytest.mark.parametrize("preset", PRESETS[1:4], ids=lambda p: p.key)
def test_the_simple_node_takes_the_presets_values_then_its_strength(vit_l, clip_l, preset):
    positive = conditioning(clip_l)
    guided, _ = run_node(
        nodes.ImageGuidance,
        positive,
        positive,
        vit_l,
        image_batch(),
        preset=preset.label,
        strength=0.6,
    )
    params = GuidanceParams().replace(**preset.values, strength=0.6)
    expected = guide(positive[0][0], core_tokens(vit_l, image_batch()), params)
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_the_simple_node_with_the_original_preset_is_the_advanced_nodes_defaults(vit_l, clip_l):
    positive, negative = conditioning(clip_l), conditioning(clip_l, "blurry")
    sockets = (positive, negative, vit_l, image_batch())
    extra = {"negative_image": image_batch(seed=4), "negative_weight": 0.5}
    simple = run_node(nodes.ImageGuidance, *sockets, **extra)
    advanced = run_node(nodes.ImageGuidanceAdvanced, *sockets, **extra)
    assert torch.equal(simple[0][0][0], advanced[0][0][0])
    assert torch.equal(simple[1][0][0], advanced[1][0][0])


def test_the_deprecated_nodes_preset_still_overrides_its_widgets(vit_l, clip_l):
    """Saved workflows of the first release give the same images: there the preset's values
    win over the widgets for the values it sets."""
    strong = PRESETS[1]
    positive = conditioning(clip_l)
    guided, _ = run_node(
        nodes.FlexDiffuseGuide,
        positive,
        positive,
        vit_l,
        image_batch(),
        preset=strong.label,
        linear=0.1,  # ignored: the preset sets linear
        strength=0.8,  # counts: no preset sets it
    )
    params = GuidanceParams().replace(**strong.values, strength=0.8)
    expected = guide(positive[0][0], core_tokens(vit_l, image_batch()), params)
    assert torch.allclose(guided[0][0], expected, atol=1e-5)


def test_an_unknown_preset_is_refused_by_name(vit_l, clip_l):
    positive = conditioning(clip_l)
    with pytest.raises(guiding.GuideError, match="Unknown preset 'no such'"):
        run_node(nodes.ImageGuidance, positive, positive, vit_l, image_batch(), preset="no such")


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
    guided, _ = run_guide(positive, positive, vit_l, image, clip_vision_2=vit_bigg, pooled=0.5)
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
        **PRESETS[-1].values,
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
    values = widgets(nodes.MappingPreview) | {"clip": clip_l, "prompt": PROMPT}
    out = nodes.MappingPreview.execute(
        positive=positive, clip_vision=vit_l, image=image_batch(2), **values
    )
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
    "FlexDiffuseImageGuidance": ["image_weight", "preset", "strength", "concepts",
                                 "image_2_weight", "image_3_weight", "image_4_weight",
                                 "negative_weight"],
    "FlexDiffuseImageGuidanceAdvanced": ["image_weight", "strength", "threshold_mult",
                                         "threshold_floor", "auto_floor", "clustered", "linear",
                                         "max_guidance", "order", "reuse", "concept_threshold",
                                         "concepts", "pooled", "negative_weight",
                                         "image_2_weight", "image_3_weight", "image_4_weight"],
    "FlexDiffuseMappingPreview": ["image_weight", "preset", "strength", "concepts",
                                  "image_2_weight", "image_3_weight", "image_4_weight", "prompt"],
    "FlexDiffuseMappingPreviewAdvanced": ["image_weight", "strength", "threshold_mult",
                                          "threshold_floor", "auto_floor", "clustered", "linear",
                                          "max_guidance", "order", "reuse", "concept_threshold",
                                          "concepts", "pooled", "image_2_weight",
                                          "image_3_weight", "image_4_weight", "prompt"],
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


@pytest.mark.parametrize("node", GUIDANCE_NODES, ids=lambda n: n.__name__)
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
    values = widgets(nodes.MappingPreview) | {"clip": clip_l}
    _, table = run_node(nodes.MappingPreview, empty, vit_l, image_batch(), **values)
    assert table.startswith(PURE_IMAGE_WARNING)


# ------------------------------------------------------------------ workflows saved with 0.2

SAVED = ROOT / "tests" / "comfyui" / "saved_workflows"


def object_info(node) -> dict:
    """What /object_info says of a node's inputs, from its schema (as ComfyUI builds it)."""
    groups: dict = {"required": {}, "optional": {}}
    for i in node.define_schema().inputs:
        kind = i.options if i.io_type == "COMBO" else i.io_type
        options = {"default": i.default} if i.default is not None else {}
        groups["optional" if i.optional else "required"][i.id] = [kind, options]
    return {"input": groups, "input_order": {k: list(v) for k, v in groups.items()}}


def saved_widgets(path: Path) -> tuple[str, dict]:
    """The FlexDiffuse node of a saved workflow: its type and its widgets' values by name,
    read by position as ComfyUI's page does (widgets added since keep their defaults)."""
    workflow = json.loads(path.read_text(encoding="utf-8"))
    node = next(n for n in workflow["nodes"] if n["type"].startswith("FlexDiffuse"))
    kind = next(n for n in nodes.NODES if n.define_schema().node_id == node["type"])
    names = [name for name, k, _ in input_specs(object_info(kind)) if is_widget(k)]
    values = node["widgets_values"]
    assert len(names) >= len(values)
    return node["type"], dict(zip(names, values, strict=False))


@pytest.mark.parametrize(
    "path", sorted(SAVED.glob("before-recipes-*.json")), ids=lambda p: p.stem[15:]
)
def test_a_workflow_saved_before_recipes_reads_its_values_as_saved_and_job_settings(path):
    """Issue 21's recipes came after every saved widget: the saved values land on the names
    they were saved under, and each image's recipe stays 'Job settings' (the same pixels)."""
    node_id, values = saved_widgets(path)
    workflow = json.loads(path.read_text(encoding="utf-8"))
    saved = next(n for n in workflow["nodes"] if n["type"] == node_id)["widgets_values"]
    assert values == dict(zip(WIDGETS_AS_SAVED[node_id], saved, strict=True))
    defaults = widgets(next(n for n in nodes.NODES if n.define_schema().node_id == node_id))
    assert {defaults[f"{slot}_recipe"] for slot in IMAGE_SLOTS} == {"Job settings"}


@pytest.mark.parametrize(
    "path",
    sorted(SAVED.glob("flexdiffuse-0.2-*.json")),
    ids=lambda p: p.stem.removeprefix("flexdiffuse-0.2-"),
)
def test_a_workflow_saved_with_the_first_release_runs_as_it_did(vit_l, clip_l, path):
    """The saved widget values land on the same parameters and give what 0.2 gave: the
    preset's values over the widgets' (the deprecated node's rule)."""
    node_id, values = saved_widgets(path)
    preset = values["preset"]
    chosen = {} if preset == NO_PRESET else dict(PRESETS_BY_LABEL[preset].values)
    named = {k: v for k, v in values.items() if k in {s.name for s in PARAM_SPECS}}
    expected_params = JobParams().replace(**{**named, **chosen})
    positive = conditioning(clip_l)
    image = image_batch()
    expected = guide(positive[0][0], core_tokens(vit_l, image), expected_params.guidance)
    if node_id == "FlexDiffuseGuide":
        guided, _ = nodes.FlexDiffuseGuide.execute(positive, positive, vit_l, image, **values).args
        assert torch.allclose(guided[0][0], expected, atol=1e-5)
    else:
        values |= {"clip": clip_l}
        _, table = nodes.FlexDiffusePreview.execute(positive, vit_l, image, **values).args
        advanced = {  # the same values, shown as the Advanced node's widgets
            spec.name: spec.choices[value] if spec.choices else value
            for spec in PARAM_SPECS
            if spec.name not in PREVIEW_SKIPS
            for value in [expected_params.get(spec.name)]
        }
        advanced |= {"clip": clip_l, "prompt": values["prompt"]}
        _, same = nodes.MappingPreviewAdvanced.execute(
            positive=positive, clip_vision=vit_l, image=image, **advanced
        ).args
        assert "prompt positions move toward the image" in table
        assert table == same


PRESETS_BY_LABEL = {p.label: p for p in PRESETS}
