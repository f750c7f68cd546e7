"""FlexDiffuse's nodes in a real ComfyUI, through its HTTP API as a user's page drives it.

Every job is small (64x64, 2 steps, fixed seed) on the live host's random-weight SD 1.5 and
ViT-L/14 (``../shared/hosts/live-comfyui``); pixels are compared within one server only.
"""

from __future__ import annotations

import copy
import os
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

# Bound at import: a checkout folder named flexdiffuse must not shadow the package later.
from flexdiffuse.encoder import ImageEncoder
from tests.live_comfy.jobs import ROOT, example, pixels, set_guide, unguided
from tests.live_comfy.make_examples import DEPRECATED, GUIDES, NODES

EXAMPLES = sorted(
    p for p in (ROOT / "example_workflows").glob("*.json") if "sdxl" not in p.stem
)  # test_sdxl_live.py runs the SDXL example: one SDXL load, after the SD 1.5 jobs
PACK_EXAMPLES = {"flexdiffuse-with-ipadapter"}  # another pack's nodes: test_ipadapter_live.py
SAVED = ROOT / "tests" / "comfyui" / "saved_workflows"


# ------------------------------------------------------------------ the pack is there


def test_the_pack_loaded_and_its_nodes_are_listed_with_their_schema(object_info):
    """ComfyUI logs an import failure and goes on: a missing node is how it shows here."""
    missing = [name for name in NODES if name not in object_info]
    assert not missing, f"FlexDiffuse's nodes are not in /object_info (IMPORT FAILED?): {missing}"
    for name in NODES:
        info = object_info[name]
        assert info["category"] == "conditioning/flexdiffuse"
        assert info["deprecated"] is (name in DEPRECATED)
        assert info["python_module"].startswith("custom_nodes.")
        inputs = {**info["input"]["required"], **info["input"].get("optional", {})}
        untipped = [k for k, v in inputs.items() if not (len(v) > 1 and v[1].get("tooltip"))]
        assert not untipped, f"{name}: inputs without a tooltip: {untipped}"
    guide = object_info["FlexDiffuseImageGuidance"]
    assert guide["output"] == ["CONDITIONING", "CONDITIONING"]
    assert guide["input"]["optional"]["clip_vision"][0] == "CLIP_VISION"  # references need none
    assert guide["input"]["required"]["image"][0] == "IMAGE,FLEXDIFFUSE_REFERENCE"
    assert guide["input"]["optional"]["image_mask"][0] == "MASK"
    assert object_info["FlexDiffuseLoadReference"]["output"] == ["FLEXDIFFUSE_REFERENCE", "IMAGE"]
    assert {"image prompt", "style", "reference", "ipadapter"} <= set(guide["search_aliases"])
    assert object_info["FlexDiffuseMappingPreview"]["output_node"] is True


def test_the_advanced_node_marks_its_expert_widgets_and_the_simple_one_has_no_knobs(
    object_info,
):
    advanced = object_info["FlexDiffuseImageGuidanceAdvanced"]["input"]
    flagged = {k for k, v in advanced["required"].items() if v[1].get("advanced")}
    assert flagged == {"threshold_floor", "auto_floor", "order", "reuse", "concept_threshold"}
    assert "preset" not in advanced["required"]
    simple = object_info["FlexDiffuseImageGuidance"]["input"]["required"]
    assert {"preset", "strength"} <= set(simple)
    assert "linear" not in simple


def test_the_server_log_has_no_import_failure(host_dir):
    log = (host_dir / "server.log").read_text(encoding="utf-8", errors="replace")
    failed = [line for line in log.splitlines() if "IMPORT FAILED" in line]
    assert not failed, failed


# ------------------------------------------------------------------ guided jobs


def test_guided_pixels_differ_from_unguided_and_repeat_exactly(comfy, basic):
    plain = pixels(comfy, unguided(basic))
    guided = pixels(comfy, basic)
    assert np.abs(guided - plain).mean() > 0.5
    pixels(comfy, set_guide(basic, strength=0.9))  # another run in between
    again = pixels(comfy, basic)
    assert np.array_equal(guided, again)


@pytest.mark.parametrize("zero", ["strength", "image_weight"])
def test_weight_zero_gives_the_unguided_pixels(comfy, basic, zero):
    assert np.array_equal(
        pixels(comfy, set_guide(basic, **{zero: 0.0})), pixels(comfy, unguided(basic))
    )


def test_a_bad_input_shows_the_nodes_error_and_the_next_run_is_normal(
    comfy, basic, object_info, names
):
    advanced = example("flexdiffuse-sd15-advanced", object_info, names)
    run = comfy.run(set_guide(advanced, pooled=0.5))  # pooled guidance is SDXL's
    assert run.status == "error"
    assert run.error["node_type"] == "FlexDiffuseImageGuidanceAdvanced"
    assert "SDXL checkpoints only" in run.error["exception_message"]
    assert np.array_equal(pixels(comfy, basic), pixels(comfy, basic))


def test_an_unknown_preset_is_refused_before_queueing(comfy, basic):
    status, body = comfy.queue(set_guide(basic, preset="no such preset"))
    assert status == 400
    assert any(n["class_type"] in GUIDES for n in body["node_errors"].values())


# ------------------------------------------------------------------ the example workflows


@pytest.mark.parametrize(
    "path", [p for p in EXAMPLES if p.stem not in PACK_EXAMPLES], ids=lambda p: p.stem
)
def test_each_sd15_example_workflow_runs(comfy, object_info, names, style_image, path):
    prompt = example(path.stem, object_info, names)
    run = comfy.run(prompt)
    assert run.status == "success", run.error
    images = [r for node in run.entry["outputs"].values() for r in node.get("images", [])]
    assert images, run.entry["outputs"]


def test_the_preview_node_returns_the_mapping_and_the_table(comfy, object_info, names):
    prompt = example("flexdiffuse-mapping-preview", object_info, names)
    for node in prompt.values():
        if node["class_type"] == "FlexDiffuseMappingPreview":
            node["inputs"]["strength"] = 0.75  # a new value: the node runs again
    run = comfy.run(prompt)
    assert run.status == "success", run.error
    node = next(k for k, v in prompt.items() if v["class_type"] == "FlexDiffuseMappingPreview")
    shown = run.outputs(node)
    picture = comfy.image(shown["images"][0])
    assert picture.shape == (224, 224, 3)
    table = shown["text"][0]
    assert "deer" in table
    assert "prompt positions move toward the image" in table


# ------------------------------------------------------------------ workflows saved with 0.2


@pytest.mark.parametrize("path", sorted(SAVED.glob("flexdiffuse-0.2-*.json")), ids=lambda p: p.stem)
def test_a_workflow_saved_with_the_first_release_loads_and_runs(comfy, object_info, names, path):
    prompt = example(path.stem, object_info, names, SAVED)
    assert {v["class_type"] for v in prompt.values()} & set(DEPRECATED)
    run = comfy.run(prompt)
    assert run.status == "success", run.error


def test_the_deprecated_nodes_preset_over_widgets_gives_the_new_nodes_pixels(
    comfy, object_info, names
):
    """0.2's node with the Strong preset over a linear widget of 0.2 and strength 0.8 makes
    the image the new node makes from the Strong preset and strength 0.8."""
    old = example("flexdiffuse-0.2-strong-preset-over-widgets", object_info, names, SAVED)
    guide_id = next(k for k, v in old.items() if v["class_type"] == "FlexDiffuseGuide")
    sockets = {k: v for k, v in old[guide_id]["inputs"].items() if isinstance(v, list)}
    new = copy.deepcopy(old)
    new[guide_id] = {
        "class_type": "FlexDiffuseImageGuidance",
        "inputs": sockets | {"preset": "Strong: matches and style", "strength": 0.8},
    }
    new[guide_id]["inputs"].update(image_weight=1.0, concepts="")
    plain = pixels(comfy, unguided(old))
    assert np.array_equal(pixels(comfy, old), pixels(comfy, new))
    assert not np.array_equal(pixels(comfy, old), plain)


# ------------------------------------------------------------------ the image tokens

TOKENS_SCRIPT = """
import sys
sys.argv = [sys.argv[0], "--cpu"]
comfyui, root, model, out, *images = sys.argv_saved
sys.path[:0] = [comfyui, root]
import numpy as np, torch
from PIL import Image
from safetensors.torch import save_file
import comfy.options
comfy.options.enable_args_parsing()  # --cpu, as the live server runs
import comfy.clip_vision
from flexdiffuse.comfy.guiding import image_tokens
tower = comfy.clip_vision.load(model)
tokens = {}
for number, image in enumerate(images):
    pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"))).float()[None] / 255
    tokens[str(number)] = image_tokens(tower, pixels)[0].contiguous()
save_file(tokens, out)
"""

TOLERANCE_RESAMPLED = 0.02
"""Of the tokens' largest magnitude: the non-square picture's tokens differ by the two
resamplings' difference (measured: max abs difference 0.030 at a token scale of 4.0, 0.76 %)."""


def test_image_tokens_from_comfyuis_vision_model_equal_the_core_encoders(host_dir, tmp_path):
    """The node pack's tokens, computed in ComfyUI's own Python from its loaded CLIP_VISION,
    against FlexDiffuse's encoder on the same weights file: for a 224-pixel square (equal to
    float error) and a non-square picture, which ComfyUI resizes and then crops to its centre,
    and FlexDiffuse crops and then resizes (equal to resampling error)."""
    from safetensors.torch import load_file

    model = host_dir / "comfyui" / "models" / "clip_vision" / "rand-clip-vit-l-14.safetensors"
    source = Image.open(host_dir / "comfyui" / "input" / "example.png").convert("RGB")
    square, wide = tmp_path / "square.png", tmp_path / "wide.png"
    source.resize((224, 224), Image.Resampling.BICUBIC).save(square)
    source.crop((0, 0, source.width, source.height * 2 // 3)).save(wide)
    out = tmp_path / "tokens.safetensors"
    script = "import sys; sys.argv_saved = sys.argv[1:]\n" + TOKENS_SCRIPT
    args = [str(host_dir / "comfyui"), str(ROOT), str(model), str(out), str(square), str(wide)]
    done = subprocess.run(
        [str(host_dir / "venv" / "bin" / "python"), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    comfy_tokens = load_file(out)
    encoder = ImageEncoder.from_single_file(model)
    for key, image, tolerance in (("0", square, 1e-3), ("1", wide, TOLERANCE_RESAMPLED)):
        core = encoder(Image.open(image))
        assert comfy_tokens[key].shape == core.shape == (257, 768)
        scale = core.abs().max()
        assert torch.allclose(comfy_tokens[key], core, atol=float(scale) * tolerance), (
            image.name,
            (comfy_tokens[key] - core).abs().max(),
            scale,
        )
