"""FlexDiffuse and IP-Adapter (ComfyUI_IPAdapter_plus) in one graph, in a real ComfyUI.

FlexDiffuse changes the conditioning; IP-Adapter patches the model's cross-attention. The two
compose: the graph with both gives its own pixels, repeats them exactly, and turning either
off gives the other's pixels exactly. Small jobs (64x64, 2 steps) on random weights: the
kit's SD 1.5 and ViT-L/14, a random ViT-H/14 and IP-Adapter SD 1.5 file
(``tests/live_comfy/random_ipadapter.py``). ``tests/ci.sh`` unpacks the pack into the live
ComfyUI and builds and links those files; elsewhere the tests skip, saying what is missing.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import pytest

from tests.live_comfy.ipadapter_graphs import (
    IPADAPTER_NODES,
    IPADAPTER_SD15,
    VIT_H,
    complete,
    method_graph,
    set_inputs,
    with_ipadapter,
)
from tests.live_comfy.jobs import ROOT, pick, pixels, small, with_models
from tests.live_comfy.make_examples import SIMPLE
from tests.live_comfy.workflows import api_prompt

EXAMPLE = ROOT / "example_workflows" / "flexdiffuse-with-ipadapter.json"
SETUP = (
    "tests/ci.sh sets it up: ../shared/hosts/unpack ipadapter-plus-9d076a3 "
    "COMFYUI/custom_nodes/ComfyUI_IPAdapter_plus; .venv/bin/python -m "
    "tests.live_comfy.random_ipadapter DIR --vit-h --link COMFYUI/models"
)


def missing(reason: str) -> None:
    """Skip; under CI=true, where tests/ci.sh installs the pack and its models, fail."""
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} ({SETUP})")
    pytest.skip(f"{reason}; {SETUP}")


@pytest.fixture(scope="module")
def ipa_names(object_info, names) -> dict[str, str]:
    absent = [node for node in IPADAPTER_NODES if node not in object_info]
    if absent:
        missing(f"ComfyUI_IPAdapter_plus is not installed in this ComfyUI (no {absent})")
    spec = object_info["IPAdapterModelLoader"]["input"]["required"]["ipadapter_file"]
    adapter = pick(spec[0] if isinstance(spec[0], list) else spec[1]["options"], "ip-adapter_sd15")
    vit_h = pick(object_info["CLIPVisionLoader"]["input"]["required"]["clip_name"][0], "vit-h")
    if not adapter or not vit_h:
        missing(
            "no IP-Adapter SD 1.5 file in models/ipadapter or no ViT-H/14 in models/clip_vision"
        )
    return {**names, IPADAPTER_SD15: adapter, VIT_H: vit_h}


@pytest.fixture(scope="module")
def both(object_info, ipa_names) -> dict[str, Any]:
    """The graph with both, every widget set, at 64x64 and 2 steps, on the server's models."""
    return small(with_models(complete(with_ipadapter(), object_info), ipa_names))


def differ(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.abs(a - b).mean()) > 0.5


def test_both_give_pixels_of_their_own_and_repeat_them_exactly(comfy, both):
    plain, flexdiffuse, ipadapter, together = (
        pixels(comfy, method_graph(m, both)) for m in ("plain", "flexdiffuse", "ipadapter", "both")
    )
    assert differ(flexdiffuse, plain)
    assert differ(ipadapter, plain)
    assert differ(together, flexdiffuse)
    assert differ(together, ipadapter)
    pixels(comfy, set_inputs(both, "KSampler", seed=7))  # the sampler runs again in between
    assert np.array_equal(pixels(comfy, both), together)


def test_ipadapter_at_weight_zero_gives_flexdiffuses_pixels(comfy, both):
    off = set_inputs(both, "IPAdapterAdvanced", weight=0.0)
    assert np.array_equal(pixels(comfy, off), pixels(comfy, method_graph("flexdiffuse", both)))


def test_flexdiffuse_at_strength_zero_gives_ipadapters_pixels(comfy, both):
    off = set_inputs(both, SIMPLE, strength=0.0)
    assert np.array_equal(pixels(comfy, off), pixels(comfy, method_graph("ipadapter", both)))


def test_the_example_workflow_runs(comfy, object_info, ipa_names):
    prompt = api_prompt(json.loads(EXAMPLE.read_text()), object_info)
    assert {v["class_type"] for v in prompt.values()} >= {SIMPLE, *IPADAPTER_NODES}
    assert pixels(comfy, small(with_models(prompt, ipa_names))).size


def test_without_the_pack_the_graph_is_refused_naming_the_missing_node(comfy, names):
    """ComfyUI checks every node's type before it queues: a graph whose IP-Adapter nodes are
    not installed gets HTTP 400 naming one, and nothing runs. (The pack's names are changed
    here to ones no pack has, so this holds with the pack installed too.)"""
    graph = small(with_models(with_ipadapter(), names))
    for node in graph.values():
        if node["class_type"] in IPADAPTER_NODES:
            node["class_type"] += "NotInstalled"
    status, body = comfy.queue(graph)
    assert status == 400
    assert body["error"]["type"] == "missing_node_type"
    assert body["error"]["extra_info"]["class_type"].startswith("IPAdapter")
    assert "not found" in body["error"]["message"]
