"""Run by the webui at launch: install only what FlexDiffuse needs and the webui lacks.

A1111 1.7-1.10 already ships everything FlexDiffuse uses (torch, transformers, safetensors,
Pillow, numpy), so on a normal install this does nothing. It uses the webui's own helpers, so
``--skip-install`` and the webui's package index settings are honoured. ComfyUI-Manager runs
this file as a plain script after installing the node pack: there it does nothing.
"""

try:
    import launch
except ImportError:  # ComfyUI-Manager runs install.py too; ComfyUI ships all FlexDiffuse needs
    launch = None

# import name -> what pip installs when it is missing
REQUIREMENTS = {
    "transformers": "transformers>=4.30",
    "safetensors": "safetensors>=0.3",
}

if launch is not None:
    for module, requirement in REQUIREMENTS.items():
        if not launch.is_installed(module):
            launch.run_pip(f'install "{requirement}"', f"{requirement} for FlexDiffuse")
