"""FlexDiffuse's ComfyUI node pack: the host glue for ComfyUI, beside :mod:`flexdiffuse.webui`.

ComfyUI imports the checkout's root ``__init__.py``, whose ``comfy_entrypoint`` returns
:class:`~flexdiffuse.comfy.nodes.FlexDiffuseExtension`. This package imports the core and
ComfyUI's modules, never the webui glue; :mod:`.guiding` and :mod:`.mapping` read ComfyUI's
objects by duck typing and import none of its modules.
"""
