"""ComfyUI's entry point: ComfyUI imports this file from ``custom_nodes/<folder>/``.

The A1111 family never imports it (it loads ``scripts/``), so installing the checkout there
changes nothing. ComfyUI imports it under a name made from its full path, so everything below
is imported relatively; the nodes are imported when ComfyUI asks for them, which keeps this
module importable without ComfyUI. ComfyUI reads ``comfy_entrypoint`` only when there is no
``NODE_CLASS_MAPPINGS``: this pack defines none (it uses the V3 node API).
"""


async def comfy_entrypoint():
    """The node pack: FlexDiffuse Image Guidance and FlexDiffuse Mapping Preview."""
    from .flexdiffuse.comfy.nodes import FlexDiffuseExtension

    return FlexDiffuseExtension()


__all__ = ["comfy_entrypoint"]
