"""ComfyUI's two graph formats: the page's workflow (``example_workflows/``) and the API prompt.

A workflow lists nodes with their sockets' links and their widgets' values in order; the API
prompt maps each input by name. Which inputs are widgets, and in which order, comes from the
server's ``/object_info`` (required inputs, then optional ones; a seed's "control after
generate" and an image upload button add a value of their own).
"""

from __future__ import annotations

from typing import Any

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
PAGE_ONLY = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}


def input_specs(info: dict[str, Any]) -> list[tuple[str, Any, dict[str, Any]]]:
    """(name, type, options) of a node type's inputs in the page's order."""
    order = info.get("input_order") or {k: list(v) for k, v in info["input"].items()}
    specs = []
    for group in ("required", "optional"):
        for name in order.get(group, []):
            spec = info["input"][group][name]
            kind, options = spec[0], spec[1] if len(spec) > 1 else {}
            specs.append((name, kind, options))
    return specs


def is_widget(kind: Any) -> bool:
    return isinstance(kind, list) or kind in WIDGET_TYPES


def extras(options: dict[str, Any]) -> list[Any]:
    """The values the page stores after a widget's own: seed control, upload button."""
    out: list[Any] = []
    if options.get("control_after_generate"):
        out.append("fixed")
    if options.get("image_upload"):
        out.append("image")
    return out


def api_prompt(workflow: dict[str, Any], object_info: dict[str, Any]) -> dict[str, Any]:
    """The API prompt of a page workflow (page-only nodes such as notes left out)."""
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in PAGE_ONLY or node.get("mode", 0) != 0:
            continue
        info = object_info[node["type"]]
        linked = {
            i["name"]: [str(links[i["link"]][1]), links[i["link"]][2]]
            for i in node.get("inputs", [])
            if i.get("link") is not None
        }
        values = list(node.get("widgets_values", []))
        inputs: dict[str, Any] = {}
        for name, kind, options in input_specs(info):
            if is_widget(kind) and values:
                inputs[name] = values.pop(0)
                del values[: len(extras(options))]
            if name in linked:
                inputs[name] = linked[name]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt
