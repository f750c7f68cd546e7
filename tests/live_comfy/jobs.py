"""The live tests' jobs: the example workflows made small, with the server's model files, run
for their pixels."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from tests.live_comfy.client import ComfyClient
from tests.live_comfy.make_examples import GUIDES
from tests.live_comfy.workflows import api_prompt

ROOT = Path(__file__).resolve().parents[2]


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


def example(
    name: str, object_info, names, folder: Path = ROOT / "example_workflows"
) -> dict[str, Any]:
    workflow = json.loads((folder / f"{name}.json").read_text())
    return small(with_models(api_prompt(workflow, object_info), names))


def guide_id(prompt: dict[str, Any]) -> str:
    return next(k for k, v in prompt.items() if v["class_type"] in GUIDES)


def unguided(prompt: dict[str, Any]) -> dict[str, Any]:
    """The graph with the guide node bypassed: the sampler takes the prompts as encoded."""
    prompt = copy.deepcopy(prompt)
    guide_node = guide_id(prompt)
    guide = prompt.pop(guide_node)["inputs"]
    for node in prompt.values():
        for key, value in node["inputs"].items():
            if value == [guide_node, 0]:
                node["inputs"][key] = guide["positive"]
            elif value == [guide_node, 1]:
                node["inputs"][key] = guide["negative"]
    return prompt


def set_guide(prompt: dict[str, Any], **values: Any) -> dict[str, Any]:
    """The graph with these guide inputs set; an input set to None is removed (unconnected)."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        if node["class_type"] in GUIDES:
            node["inputs"].update(values)
            for key in [k for k, v in values.items() if v is None]:
                del node["inputs"][key]
    return prompt


def pixels(comfy: ComfyClient, prompt: dict[str, Any]) -> np.ndarray:
    run = comfy.run(prompt)
    assert run.status == "success", run.error
    saved = [r for node in run.entry["outputs"].values() for r in node.get("images", [])]
    assert saved, f"no image in {run.entry['outputs']}"
    return comfy.image(saved[0]).astype(np.int16)
