"""FlexDiffuse's nodes in a real ComfyUI, through its HTTP API as a user's page drives it.

Every job is small (64x64, 2 steps, fixed seed) on the live host's random-weight SD 1.5 and
ViT-L/14 (``../shared/hosts/live-comfyui``); pixels are compared within one server only.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.live_comfy.client import ComfyClient
from tests.live_comfy.make_examples import (
    DEPRECATED,
    GUIDES,
    NODES,
    SD15,
    SDXL,
    VIT_BIGG,
    VIT_L,
)
from tests.live_comfy.workflows import api_prompt

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "example_workflows").glob("*.json"))
SAVED = ROOT / "tests" / "comfyui" / "saved_workflows"


def small(prompt: dict[str, Any]) -> dict[str, Any]:
    """The same graph at 64x64 and 2 steps, so CPU runs it in seconds."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=64, height=64)
        if node["class_type"] == "KSampler":
            node["inputs"].update(steps=2)
    return prompt


def with_models(prompt: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    """The graph with the example's model file names replaced by the server's."""
    for node in prompt.values():
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value in names:
                node["inputs"][key] = names[value]
    return prompt


def pick(options: list[str], *words: str) -> str | None:
    return next((o for o in options if all(w in o.lower() for w in words)), None)


@pytest.fixture(scope="session")
def names(models) -> dict[str, str]:
    found = {
        SD15: pick(models["checkpoints"], "sd15") or pick(models["checkpoints"], "1-5"),
        VIT_L: pick(models["clip_vision"], "vit-l"),
        SDXL: pick(models["checkpoints"], "sdxl") or pick(models["checkpoints"], "xl"),
        VIT_BIGG: pick(models["clip_vision"], "bigg"),
    }
    if not found[SD15] or not found[VIT_L]:
        pytest.fail(f"the server has no SD 1.5 checkpoint or ViT-L CLIP vision model: {models}")
    return {k: v for k, v in found.items() if v}


def example(name: str, object_info, names, folder: Path = ROOT / "example_workflows"):
    workflow = json.loads((folder / f"{name}.json").read_text())
    return small(with_models(api_prompt(workflow, object_info), names))


@pytest.fixture(scope="session")
def basic(object_info, names) -> dict[str, Any]:
    return example("flexdiffuse-sd15-basic", object_info, names)


def unguided(prompt: dict[str, Any]) -> dict[str, Any]:
    """The graph with the guide node bypassed: the sampler takes the prompts as encoded."""
    prompt = copy.deepcopy(prompt)
    guide_id = next(k for k, v in prompt.items() if v["class_type"] in GUIDES)
    guide = prompt.pop(guide_id)["inputs"]
    for node in prompt.values():
        for key, value in node["inputs"].items():
            if value == [guide_id, 0]:
                node["inputs"][key] = guide["positive"]
            elif value == [guide_id, 1]:
                node["inputs"][key] = guide["negative"]
    return prompt


def set_guide(prompt: dict[str, Any], **values: Any) -> dict[str, Any]:
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if node["class_type"] in GUIDES:
            node["inputs"].update(values)
    return prompt


def pixels(comfy: ComfyClient, prompt: dict[str, Any]) -> np.ndarray:
    run = comfy.run(prompt)
    assert run.status == "success", run.error
    saved = [r for node in run.entry["outputs"].values() for r in node.get("images", [])]
    assert saved, f"no image in {run.entry['outputs']}"
    return comfy.image(saved[0]).astype(np.int16)


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
    assert guide["input"]["required"]["clip_vision"][0] == "CLIP_VISION"
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
    assert "SDXL only" in run.error["exception_message"]
    assert np.array_equal(pixels(comfy, basic), pixels(comfy, basic))


def test_an_unknown_preset_is_refused_before_queueing(comfy, basic):
    status, body = comfy.queue(set_guide(basic, preset="no such preset"))
    assert status == 400
    assert any(n["class_type"] in GUIDES for n in body["node_errors"].values())


# ------------------------------------------------------------------ the example workflows


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_each_example_workflow_runs(comfy, object_info, names, path):
    if "sdxl" in path.stem and not {SDXL, VIT_BIGG} <= set(names):
        pytest.skip("the live host has no SDXL checkpoint and ViT-bigG vision model")
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


@pytest.mark.parametrize("path", sorted(SAVED.glob("*.json")), ids=lambda p: p.stem)
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
comfyui, root, model, image, out = sys.argv_saved
sys.path[:0] = [comfyui, root]
import numpy as np, torch
from PIL import Image
from safetensors.torch import save_file
import comfy.options
comfy.options.enable_args_parsing()  # --cpu, as the live server runs
import comfy.clip_vision
from flexdiffuse.comfy.guiding import image_tokens
tower = comfy.clip_vision.load(model)
pixels = torch.from_numpy(np.asarray(Image.open(image).convert("RGB"))).float()[None] / 255
save_file({"tokens": image_tokens(tower, pixels)[0].contiguous()}, out)
"""


def test_image_tokens_from_comfyuis_vision_model_equal_the_core_encoders(host_dir, tmp_path):
    """The node pack's tokens, computed in ComfyUI's own Python from its loaded CLIP_VISION,
    against FlexDiffuse's encoder on the same 224-pixel image and the same weights file."""
    from safetensors.torch import load_file

    from flexdiffuse.encoder import ImageEncoder

    model = host_dir / "comfyui" / "models" / "clip_vision" / "rand-clip-vit-l-14.safetensors"
    source = host_dir / "comfyui" / "input" / "example.png"
    image = tmp_path / "square.png"
    Image.open(source).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC).save(image)
    out = tmp_path / "tokens.safetensors"
    script = "import sys; sys.argv_saved = sys.argv[1:]\n" + TOKENS_SCRIPT
    args = [str(host_dir / "comfyui"), str(ROOT), str(model), str(image), str(out)]
    done = subprocess.run(
        [str(host_dir / "venv" / "bin" / "python"), "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    comfy_tokens = load_file(out)["tokens"]
    core = ImageEncoder.from_single_file(model)(Image.open(image))
    assert comfy_tokens.shape == core.shape == (257, 768)
    scale = core.abs().max()
    assert torch.allclose(comfy_tokens, core, atol=float(scale) * 1e-3), (
        (comfy_tokens - core).abs().max(),
        scale,
    )
