"""Run by the webui at launch: install only what FlexDiffuse needs and the webui lacks.

A1111 1.7-1.10 already ships everything FlexDiffuse uses (torch, transformers, safetensors,
Pillow, numpy), so on a normal install this does nothing. It uses the webui's own helpers, so
``--skip-install`` and the webui's package index settings are honoured.
"""

import launch

# import name -> what pip installs when it is missing
REQUIREMENTS = {
    "transformers": "transformers>=4.30",
    "safetensors": "safetensors>=0.3",
}

for module, requirement in REQUIREMENTS.items():
    if not launch.is_installed(module):
        launch.run_pip(f'install "{requirement}"', f"{requirement} for FlexDiffuse")
