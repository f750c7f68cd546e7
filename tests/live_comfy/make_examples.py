"""Write ``example_workflows/*.json`` from the graphs below and a live ComfyUI's /object_info.

    .venv/bin/python -m tests.live_comfy.make_examples URL [--thumbnails] [NAME...]

The graphs are API prompts (inputs by name); the page's format needs each node's sockets and
its widgets' values in the server's order, which /object_info gives. The model file names are
the ones README.md tells users to download; the live tests swap in the live host's.

``--thumbnails`` also runs each example on the live host (its random-weight test models, at
128x128 and 4 steps) and writes ``example_workflows/NAME.jpg``, ComfyUI's templates' picture,
labelled as test-model output: what the workflow makes, not what a real model makes. NAMEs
limit the thumbnails to those examples (every workflow is written).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from tests.live_comfy.client import ComfyClient
from tests.live_comfy.workflows import api_prompt, extras, input_specs, is_widget

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "example_workflows"

SD15 = "v1-5-pruned-emaonly.safetensors"
SDXL = "sd_xl_base_1.0.safetensors"
VIT_L = "clip-vit-large-patch14.safetensors"
VIT_BIGG = "CLIP-ViT-bigG-14-laion2B-39B-b160k.safetensors"
IPADAPTER_SD15 = "ip-adapter_sd15.safetensors"  # ComfyUI_IPAdapter_plus's README names these
VIT_H = "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors"
IMAGE = "example.png"
STYLE_IMAGE = "flexdiffuse-style.png"
"""The style picture of the recipe and region examples: :func:`style_picture`, which the live
tests and ``--thumbnails`` upload (ComfyUI ships example.png only)."""


def _base(checkpoint: str, prompt: str, negative: str, size: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": prompt, "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": negative, "clip": ["1", 1]}},
        "4": {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": VIT_L}},
        "5": {"class_type": "LoadImage", "inputs": {"image": IMAGE}},
        "7": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "8": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["1", 0],
                "seed": 42,
                "steps": 20,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "positive": ["6", 0],
                "negative": ["6", 1],
                "latent_image": ["7", 0],
                "denoise": 1.0,
            },
        },
        "9": {"class_type": "VAEDecode", "inputs": {"samples": ["8", 0], "vae": ["1", 2]}},
        "10": {
            "class_type": "SaveImage",
            "inputs": {"images": ["9", 0], "filename_prefix": "FlexDiffuse"},
        },
    }


def style_picture(size: int = 512) -> Image.Image:
    """A picture with a style and no subject: bold diagonal bands of warm colours."""
    colours = [(230, 90, 40), (250, 200, 60), (150, 40, 90), (40, 30, 60)]
    picture = Image.new("RGB", (size, size))
    draw = ImageDraw.Draw(picture)
    band = size // 8
    for number, start in enumerate(range(-size, size, band)):
        corners = [(start, 0), (start + band, 0), (start + band + size, size), (start + size, size)]
        draw.polygon(corners, fill=colours[number % len(colours)])
    return picture


SIMPLE = "FlexDiffuseImageGuidance"
ADVANCED = "FlexDiffuseImageGuidanceAdvanced"
PREVIEW = "FlexDiffuseMappingPreview"
GUIDES = (SIMPLE, ADVANCED, "FlexDiffuseGuide")
"""The guide nodes (the last one deprecated: workflows saved with the first release)."""
DEPRECATED = ("FlexDiffuseGuide", "FlexDiffusePreview")
ENCODE, SAVE, LOAD = (f"FlexDiffuse{verb}Reference" for verb in ("Encode", "Save", "Load"))
NODES = (SIMPLE, ADVANCED, PREVIEW, f"{PREVIEW}Advanced", ENCODE, SAVE, LOAD, *DEPRECATED)
"""Every node of the pack, as /object_info lists them."""


def _guide(node: str = SIMPLE, **inputs: Any) -> dict[str, Any]:
    return {
        "class_type": node,
        "inputs": {
            "positive": ["2", 0],
            "negative": ["3", 0],
            "clip_vision": ["4", 0],
            "image": ["5", 0],
            "clip": ["1", 1],
            **inputs,
        },
    }


PROMPT = "a photo of a deer in a dark forest, autumn, detailed"
NEGATIVE = "blurry, low quality"


def sd15_basic() -> dict[str, Any]:
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["6"] = _guide(preset="Original defaults")
    return graph


def sdxl_both_towers() -> dict[str, Any]:
    graph = _base(SDXL, PROMPT, NEGATIVE, 1024)
    graph["11"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": VIT_BIGG}}
    graph["6"] = _guide(ADVANCED, clip_vision_2=["11", 0], pooled=0.3)
    return graph


def sd15_advanced() -> dict[str, Any]:
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["6"] = _guide(ADVANCED, threshold_mult=0.5, linear=0.8, max_guidance=0.5)
    return graph


def two_images_and_a_negative() -> dict[str, Any]:
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["12"] = {"class_type": "LoadImage", "inputs": {"image": IMAGE}}
    graph["13"] = {"class_type": "LoadImage", "inputs": {"image": IMAGE}}
    graph["6"] = _guide(
        image_2=["12", 0], image_2_weight=0.5, negative_image=["13", 0], negative_weight=1.0
    )
    return graph


def step_window() -> dict[str, Any]:
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["6"] = _guide()
    graph["14"] = {
        "class_type": "ConditioningSetTimestepRange",
        "inputs": {"conditioning": ["6", 0], "start": 0.0, "end": 0.6},
    }
    graph["15"] = {
        "class_type": "ConditioningSetTimestepRange",
        "inputs": {"conditioning": ["2", 0], "start": 0.6, "end": 1.0},
    }
    graph["16"] = {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": ["14", 0], "conditioning_2": ["15", 0]},
    }
    graph["8"]["inputs"]["positive"] = ["16", 0]
    return graph


def with_ipadapter(size: int = 512) -> dict[str, Any]:
    """FlexDiffuse guides the prompt by the image; IP-Adapter (ComfyUI_IPAdapter_plus's
    IPAdapterAdvanced, with its own ViT-H/14) adds the image to the model's attention."""
    graph = _base(SD15, PROMPT, NEGATIVE, size)
    graph["6"] = _guide(preset="Original defaults")
    graph["20"] = {
        "class_type": "IPAdapterModelLoader",
        "inputs": {"ipadapter_file": IPADAPTER_SD15},
    }
    graph["21"] = {"class_type": "CLIPVisionLoader", "inputs": {"clip_name": VIT_H}}
    graph["22"] = {
        "class_type": "IPAdapterAdvanced",
        "inputs": {
            "model": ["1", 0],
            "ipadapter": ["20", 0],
            "image": ["5", 0],
            "clip_vision": ["21", 0],
            "weight": 1.0,
            "weight_type": "linear",
            "combine_embeds": "concat",
            "start_at": 0.0,
            "end_at": 1.0,
            "embeds_scaling": "V only",
        },
    }
    graph["8"]["inputs"]["model"] = ["22", 0]
    return graph


def style_and_subject() -> dict[str, Any]:
    """Style from one picture (its recipe 'Style only'), subject from another (the preset's
    values, 'Job settings')."""
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["12"] = {"class_type": "LoadImage", "inputs": {"image": STYLE_IMAGE}}
    graph["6"] = _guide(
        preset="Original defaults",
        image=["12", 0],
        image_recipe="Style only",
        image_2=["5", 0],
        image_2_recipe="Job settings",
    )
    return graph


def references_in_regions() -> dict[str, Any]:
    """Two references, each guiding the prompt for one half of the picture: ComfyUI's own
    ConditioningSetMask places each guided conditioning, ConditioningCombine joins them."""
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    graph["12"] = {"class_type": "LoadImage", "inputs": {"image": STYLE_IMAGE}}
    for node, image, recipe in (("30", "5", "Job settings"), ("31", "12", "Style only")):
        graph[node] = {
            "class_type": ENCODE,
            "inputs": {"images": [image, 0], "clip_vision": ["4", 0], "recipe": recipe},
        }
    for node, reference in (("6", "30"), ("32", "31")):
        graph[node] = _guide(image=[reference, 0])
        del graph[node]["inputs"]["clip_vision"]  # a reference needs no vision model
    graph["33"] = {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 512, "height": 512}}
    graph["34"] = {"class_type": "SolidMask", "inputs": {"value": 1.0, "width": 256, "height": 512}}
    graph["35"] = {  # the left half
        "class_type": "MaskComposite",
        "inputs": {
            "destination": ["33", 0],
            "source": ["34", 0],
            "x": 0,
            "y": 0,
            "operation": "add",
        },
    }
    graph["36"] = {"class_type": "InvertMask", "inputs": {"mask": ["35", 0]}}  # the right half
    for node, guided, mask in (("37", "6", "35"), ("38", "32", "36")):
        graph[node] = {
            "class_type": "ConditioningSetMask",
            "inputs": {
                "conditioning": [guided, 0],
                "mask": [mask, 0],
                "strength": 1.0,
                "set_cond_area": "default",
            },
        }
    graph["39"] = {
        "class_type": "ConditioningCombine",
        "inputs": {"conditioning_1": ["37", 0], "conditioning_2": ["38", 0]},
    }
    graph["8"]["inputs"].update(positive=["39", 0], negative=["6", 1])
    return graph


def preview() -> dict[str, Any]:
    graph = _base(SD15, PROMPT, NEGATIVE, 512)
    keep = {k: graph[k] for k in ("1", "2", "4", "5")}
    keep["6"] = {
        "class_type": PREVIEW,
        "inputs": {
            "positive": ["2", 0],
            "clip_vision": ["4", 0],
            "image": ["5", 0],
            "clip": ["1", 1],
            "prompt": PROMPT,
        },
    }
    keep["7"] = {"class_type": "PreviewAny", "inputs": {"source": ["6", 1]}}  # the table
    return keep


EXAMPLES = {
    "flexdiffuse-sd15-basic": (sd15_basic, "SD 1.5 guided by one image: a preset and a strength."),
    "flexdiffuse-sd15-advanced": (
        sd15_advanced,
        "The Advanced node: every value by hand (stronger threshold and linear weights).",
    ),
    "flexdiffuse-sdxl-both-towers": (
        sdxl_both_towers,
        "SDXL: ViT-L/14 guides the ViT-L half, ViT-bigG/14 the bigG half and the pooled vector.",
    ),
    "flexdiffuse-two-images-and-a-negative": (
        two_images_and_a_negative,
        "Two guidance images (the second at weight 0.5) and a negative image.",
    ),
    "flexdiffuse-sd15-step-window": (
        step_window,
        "The image guides the first 60% of the steps only (ConditioningSetTimestepRange).",
    ),
    "flexdiffuse-with-ipadapter": (
        with_ipadapter,
        "Beside IP-Adapter: FlexDiffuse guides the prompt, IP-Adapter the attention (needs the "
        "ComfyUI_IPAdapter_plus node pack, an IP-Adapter SD 1.5 model and its ViT-H/14).",
    ),
    "flexdiffuse-style-and-subject": (
        style_and_subject,
        "Style from one picture (its recipe: Style only), subject from another (Job settings: "
        "the preset's values). Each image input has its own recipe.",
    ),
    "flexdiffuse-references-in-regions": (
        references_in_regions,
        "Two references in two halves of the picture: each is encoded once (FlexDiffuse Encode "
        "Reference; save it with FlexDiffuse Save Reference, reuse it with Load Reference), "
        "guides the prompt, and ComfyUI's ConditioningSetMask places it.",
    ),
    "flexdiffuse-mapping-preview": (
        preview,
        "Which image patch each prompt token maps to, and the token table.",
    ),
}


SHOWS_IMAGE = {"LoadImage": 300, "SaveImage": 300, PREVIEW: 420, "PreviewAny": 700}
"""Room below a node's widgets for the picture it shows."""


def depth(graph: dict[str, Any], node: str) -> int:
    links = [v for v in graph[node]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return 1 + max((depth(graph, source) for source, _ in links), default=-1)


def page_workflow(graph: dict[str, Any], info: dict[str, Any], note: str) -> dict[str, Any]:
    """The page's workflow for an API graph, laid out in columns by depth."""
    links: list[list[Any]] = []
    nodes = []
    rows: dict[int, int] = {}
    for node_id in sorted(graph, key=int):
        node = graph[node_id]
        kind = info[node["class_type"]]
        column = depth(graph, node_id)
        row = rows.get(column, 0)
        inputs, widgets = [], []
        for name, itype, options in input_specs(kind):
            value = node["inputs"].get(name)
            if is_widget(itype):
                widgets.append(options.get("default") if value is None else value)
                widgets += extras(options)
                continue
            link = None
            if isinstance(value, list):
                link = len(links) + 1
                source_type = info[graph[value[0]]["class_type"]]["output"][value[1]]
                links.append(
                    [link, int(value[0]), value[1], int(node_id), len(inputs), source_type]
                )
            inputs.append({"name": name, "type": itype, "link": link})
        sockets = max(len(inputs), len(kind["output"]))
        height = 40 + 22 * sockets + 26 * len(widgets) + SHOWS_IMAGE.get(node["class_type"], 0)
        rows[column] = row + height + 40
        nodes.append(
            {
                "id": int(node_id),
                "type": node["class_type"],
                "pos": [40 + 360 * column, 40 + row],
                "size": [760 if node["class_type"] == "PreviewAny" else 320, height],
                "flags": {},
                "order": len(nodes),
                "mode": 0,
                "inputs": inputs,
                "outputs": [
                    {"name": name, "type": otype, "links": [], "slot_index": slot}
                    for slot, (name, otype) in enumerate(
                        zip(kind["output_name"], kind["output"], strict=True)
                    )
                ],
                "properties": {"Node name for S&R": node["class_type"]},
                "widgets_values": widgets,
            }
        )
    by_id = {node["id"]: node for node in nodes}
    for link in links:
        by_id[link[1]]["outputs"][link[2]]["links"].append(link[0])
    top = max(node["pos"][1] + node["size"][1] for node in nodes) + 40
    nodes.append(
        {
            "id": max(by_id) + 1,
            "type": "MarkdownNote",
            "pos": [40, top],
            "size": [640, 120],
            "flags": {},
            "order": len(nodes),
            "mode": 0,
            "inputs": [],
            "outputs": [],
            "properties": {},
            "widgets_values": [
                f"**FlexDiffuse**: {note} Replace the image and the models "
                "with yours; README.md, 'ComfyUI', lists the files."
            ],
        }
    )
    return {
        "last_node_id": max(by_id) + 1,
        "last_link_id": len(links),
        "nodes": nodes,
        "links": links,
        "groups": [],
        "config": {},
        "extra": {},
        "version": 0.4,
    }


THUMBNAIL = 256
LABEL = "test models (random weights)"


def live_graph(graph: dict[str, Any], info: dict[str, Any], size: int, steps: int):
    """The graph with the live host's models (the first SD 1.5 and ViT-L it lists; None
    when it has no SDXL for an SDXL graph), at ``size`` pixels and ``steps`` steps."""
    graph = copy.deepcopy(graph)
    checkpoints = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    towers = info["CLIPVisionLoader"]["input"]["required"]["clip_name"][0]
    adapters = info.get("IPAdapterModelLoader", {}).get("input", {}).get("required", {})
    adapters = adapters.get("ipadapter_file", [[]])[0]
    names = {
        SD15: next((c for c in checkpoints if "sd15" in c.lower()), None),
        SDXL: next((c for c in checkpoints if "xl" in c.lower()), None),
        VIT_L: next((t for t in towers if "vit-l" in t.lower()), None),
        VIT_BIGG: next((t for t in towers if "bigg" in t.lower()), None),
        VIT_H: next((t for t in towers if "vit-h" in t.lower()), None),
        IPADAPTER_SD15: next((a for a in adapters if "ip-adapter_sd15" in a.lower()), None),
    }
    for node in graph.values():
        for key, value in node["inputs"].items():
            if isinstance(value, str) and value in names:
                if names[value] is None:
                    return None
                node["inputs"][key] = names[value]
        if node["class_type"] == "EmptyLatentImage":
            node["inputs"].update(width=size, height=size)
        if node["class_type"] == "KSampler":
            node["inputs"].update(steps=steps)
    return graph


def thumbnail(picture: np.ndarray) -> Image.Image:
    """The picture at the templates' size with a visible strip saying what made it."""
    image = Image.fromarray(picture).convert("RGB").resize((THUMBNAIL, THUMBNAIL), Image.LANCZOS)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, THUMBNAIL - 22, THUMBNAIL, THUMBNAIL), fill=(0, 0, 0))
    draw.text((6, THUMBNAIL - 18), LABEL, fill=(255, 255, 0))
    return image


def write_thumbnail(client: ComfyClient, name: str, graph: dict[str, Any]) -> None:
    run = client.run(graph)
    if run.status != "success":  # e.g. an SDXL the host's ComfyUI cannot load
        print(f"no thumbnail for {name}: it failed on the live host: {run.error}")
        return
    images = [r for node in run.entry["outputs"].values() for r in node.get("images", [])]
    thumbnail(client.image(images[0])).save(OUT / f"{name}.jpg", quality=80, optimize=True)
    print(f"wrote example_workflows/{name}.jpg")


def main(url: str, thumbnails: bool, only: tuple[str, ...] = ()) -> None:
    client = ComfyClient(url)
    info = client.get_json("/object_info")
    if thumbnails:
        client.upload_image(STYLE_IMAGE, style_picture())
    OUT.mkdir(exist_ok=True)
    for name, (make, note) in EXAMPLES.items():
        workflow = page_workflow(make(), info, note)
        (OUT / f"{name}.json").write_text(json.dumps(workflow, indent=2) + "\n", encoding="utf-8")
        print(f"wrote example_workflows/{name}.json")
        # The saved workflow read back as the page reads it: every widget's value is there.
        thumbnails_here = thumbnails and (not only or name in only)
        graph = live_graph(api_prompt(workflow, info), info, 128, 4) if thumbnails_here else None
        if graph is not None:
            write_thumbnail(client, name, graph)
        elif thumbnails_here:
            print(f"no thumbnail for {name}: the live host lacks its models")


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(
        arguments[0] if arguments else "http://127.0.0.1:8188",
        "--thumbnails" in sys.argv,
        tuple(arguments[1:]),
    )
