"""ComfyUI API graphs with FlexDiffuse and ComfyUI_IPAdapter_plus side by side (issue 23).

One SD 1.5 job in four forms: plain, FlexDiffuse (its guide node on the conditionings),
IP-Adapter (the pack's ``IPAdapterAdvanced`` patching the model's cross-attention), both; and
the plain job with the same vision towers merely loaded and run (``CLIPVisionEncode`` into
``unCLIPConditioning`` at strength 0, which returns the conditioning unchanged), so that what
loading a tower does to the host is not counted as a method's cost. FlexDiffuse's SD 1.5
tower is ViT-L/14; IP-Adapter's SD 1.5 models read ViT-H/14. Nothing here imports the pack:
the graphs name its nodes, and a server without it refuses them at ``/prompt``.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.live_comfy.make_examples import (
    IPADAPTER_SD15,
    VIT_H,
    VIT_L,
    page_workflow,
    with_ipadapter,
)
from tests.live_comfy.workflows import api_prompt

IPADAPTER_NODES = ("IPAdapterModelLoader", "IPAdapterAdvanced")
__all__ = ["IPADAPTER_SD15", "VIT_H", "with_ipadapter"]

METHODS = ("plain", "flexdiffuse", "ipadapter", "both")
TOWERS_OF = {
    "plain": (),
    "flexdiffuse": ("vit-l",),
    "ipadapter": ("vit-h",),
    "both": ("vit-l", "vit-h"),
}
"""The vision towers each method loads; its baseline is plain sampling with those loaded."""

GUIDE, SAMPLER = "6", "8"
TOWER_NODES = {"vit-l": "4", "vit-h": "21"}


def complete(graph: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """``graph`` with every widget the server's nodes have, at its default where not set."""
    return api_prompt(page_workflow(graph, object_info, ""), object_info)


def method_graph(method: str, both: dict[str, Any]) -> dict[str, Any]:
    """The graph with both (``with_ipadapter``, complete) with either part taken out: its nodes
    removed, the sampler's inputs rewired around them."""
    graph = copy.deepcopy(both)
    if method in ("plain", "ipadapter"):
        del graph[GUIDE], graph[TOWER_NODES["vit-l"]]
        graph[SAMPLER]["inputs"].update(positive=["2", 0], negative=["3", 0])
    if method in ("plain", "flexdiffuse"):
        for node in ("20", "21", "22"):
            del graph[node]
        graph[SAMPLER]["inputs"]["model"] = ["1", 0]
    return graph


def with_towers_loaded(graph: dict[str, Any], towers: tuple[str, ...]) -> dict[str, Any]:
    """``graph`` that also loads and runs ``towers`` without changing its image."""
    graph = copy.deepcopy(graph)
    positive = graph[SAMPLER]["inputs"]["positive"]
    for number, tower in enumerate(towers):
        loader, encode, unclip = (str(30 + 3 * number + k) for k in range(3))
        graph[loader] = {
            "class_type": "CLIPVisionLoader",
            "inputs": {"clip_name": VIT_L if tower == "vit-l" else VIT_H},
        }
        graph[encode] = {
            "class_type": "CLIPVisionEncode",
            "inputs": {"clip_vision": [loader, 0], "image": ["5", 0], "crop": "center"},
        }
        graph[unclip] = {
            "class_type": "unCLIPConditioning",
            "inputs": {
                "conditioning": positive,
                "clip_vision_output": [encode, 0],
                "strength": 0.0,
                "noise_augmentation": 0.0,
            },
        }
        positive = [unclip, 0]
    graph[SAMPLER]["inputs"]["positive"] = positive
    return graph


def set_inputs(graph: dict[str, Any], class_type: str, **values: Any) -> dict[str, Any]:
    graph = copy.deepcopy(graph)
    for node in graph.values():
        if node["class_type"] == class_type:
            node["inputs"].update(values)
    return graph
