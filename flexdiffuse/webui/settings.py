"""FlexDiffuse's section of the webui's Settings page, and reading it.

Each tower setting is a dropdown of the fitting tower files found on disk (see
:func:`tower_folders`) that also takes any text: a Hugging Face id, a folder or a file. While a
setting still names a default (:func:`~flexdiffuse.towers.is_default_source`), a fitting file
found on disk is used instead of downloading (:func:`source_to_load`).

Looking on disk (when the Settings page is built or refreshed, and at each job or preview
whose tower setting names a default) reads safetensors headers and the ``config.json`` of
folders saved by transformers only. Pickles found there are never opened: when no fitting
file is found, the console names them with the command that converts one to safetensors. A
pickle is read only when a setting (or an API request's override) names it, and only on a
torch without a published ``weights_only`` bypass (:func:`~flexdiffuse.checkpoints.read_weights`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from ..checkpoints import SAFE_TORCH, convert_command
from ..download import is_cached
from ..known_towers import KnownTower
from ..params import INFOTEXT_PREFIX
from ..towers import find_pickles, find_tower_files, is_default_source, split_hub_source
from .families import FAMILIES, TOWERS
from .hosts import Host, SettingSpec

logger = logging.getLogger(__name__)

KEEP_LOADED = "flexdiffuse_keep_loaded"
SDXL_VIT_L_ONLY = "flexdiffuse_sdxl_vit_l_only"
SDXL_VIT_L_ONLY_KEY = f"{INFOTEXT_PREFIX} SDXL ViT-L only"
"""Its infotext key: the setting changes SDXL images, so a guided job records it when on."""
DEVICE = "flexdiffuse_device"
DEVICE_SAME = "Same as Stable Diffusion"
DEVICE_CPU = "CPU"
TOWER_FOLDERS = "flexdiffuse_tower_folders"
FOLDER_SEPARATOR = ";"
DOWNLOAD_FOLDER = "FlexDiffuse"
"""The folder of the webui's models folder that downloads go to (a Hugging Face cache)."""
PICKLES_NAMED = 3
"""How many unread pickles the console note names (Forge's preprocessor folder holds dozens)."""


def setting_specs(
    on_keep_loaded_change: Callable[[], None], on_tower_change: Callable[[], None]
) -> list[SettingSpec]:
    """Every FlexDiffuse setting, in the order the Settings page shows them.

    ``on_tower_change`` runs when a setting that picks a tower file changes.
    """
    towers = [
        SettingSpec(
            tower.setting,
            tower.default_source,
            f"{tower.label} vision model, for {_families_of(tower)}",
            f"pick a file found on disk, or type a Hugging Face id, a folder saved by "
            f"transformers or a .safetensors file (a .pth/.bin pickle is read only if named "
            f"here, on torch {SAFE_TORCH} or newer). The default id downloads {tower.size} "
            f"once into models/{DOWNLOAD_FOLDER}, unless a fitting .safetensors file is found "
            f"on disk",
            suggestions=_suggestions(tower),
            onchange=on_tower_change,
        )
        for tower in TOWERS
    ]
    return [
        *towers,
        SettingSpec(
            TOWER_FOLDERS,
            "",
            "More folders with CLIP vision files",
            "searched with the webui's own (models/clip_vision, ControlNet's clip_vision "
            f"folders), e.g. ComfyUI's models/clip_vision; separate folders with "
            f"{FOLDER_SEPARATOR}",
            onchange=on_tower_change,
        ),
        SettingSpec(
            SDXL_VIT_L_ONLY,
            False,
            "SDXL: guide only the ViT-L part of the conditioning",
            "skips the ViT-bigG vision model, for machines short of memory",
            infotext=SDXL_VIT_L_ONLY_KEY,
        ),
        SettingSpec(
            KEEP_LOADED,
            True,
            "Keep CLIP vision models loaded between generations",
            "off: each model is unloaded right after encoding; encoded images are kept",
            onchange=on_keep_loaded_change,
        ),
        SettingSpec(
            DEVICE,
            DEVICE_SAME,
            "Run CLIP vision models on",
            "CPU saves GPU memory; encoding an image then takes a few seconds",
            choices=(DEVICE_SAME, DEVICE_CPU),
        ),
    ]


def tower_source(host: Host, tower: KnownTower) -> str:
    """The Hugging Face id, folder or file set for ``tower`` (default: its id)."""
    return str(host.option(tower.setting, "") or "").strip() or tower.default_source


def tower_folders(host: Host) -> list[Path]:
    """Where to look for tower files: the host's folders, then the user's extra ones."""
    extra = str(host.option(TOWER_FOLDERS, "") or "")
    folders = [Path(part.strip()).expanduser() for part in extra.split(FOLDER_SEPARATOR)]
    return [*host.tower_folders(), *(folder for folder in folders if str(folder) != ".")]


def found_towers(host: Host, tower: KnownTower) -> list[Path]:
    """The tower files and folders on disk whose image tokens fit ``tower``.

    Only safetensors files and folders saved by transformers are read. When none fits, the
    pickles found are named on the console (once), with how to convert one.
    """
    folders = tower_folders(host)
    found = find_tower_files(folders, tower.token_width)
    if not found:
        _note_pickles(find_pickles(folders))
    return found


def download_dir(host: Host) -> Path:
    """The Hugging Face cache that downloaded towers go to."""
    return host.models_dir() / DOWNLOAD_FOLDER


def source_to_load(host: Host, tower: KnownTower) -> str:
    """What to load for ``tower``: its setting, unless that still names a default.

    For a default (today's or an earlier whole-model id, as settings saved before keep
    them), a fitting file found on disk comes first, then an earlier default already
    downloaded, then today's default (the smallest download).
    """
    source = tower_source(host, tower)
    if not is_default_source(source, tower):
        return source
    found = found_towers(host, tower)
    if found:
        _say_once(
            f"FlexDiffuse: using {found[0]} for the {tower.label} vision model, found on "
            f"disk, instead of downloading the default '{source}'"
        )
        return str(found[0])
    earlier = source != tower.default_source
    if earlier and not is_cached(*split_hub_source(source), download_dir(host)):
        return tower.default_source
    return source


def sources_in_use(host: Host) -> list[str]:
    """What every tower setting names now (see :func:`source_to_load`)."""
    return [source_to_load(host, tower) for tower in TOWERS]


def keep_loaded(host: Host) -> bool:
    """Whether vision towers stay loaded between generations."""
    return bool(host.option(KEEP_LOADED, True))


def towers_on_cpu(host: Host) -> bool:
    """Whether vision towers run on the CPU rather than the webui's device."""
    return host.option(DEVICE, DEVICE_SAME) == DEVICE_CPU


def sdxl_vit_l_only(host: Host) -> bool:
    """Whether SDXL checkpoints are guided in their ViT-L part only."""
    return bool(host.option(SDXL_VIT_L_ONLY, False))


def infotext_entries(host: Host) -> dict[str, str]:
    """The settings a FlexDiffuse infotext records: those that change the image, when not
    at their default (read back by the webui as override settings)."""
    return {SDXL_VIT_L_ONLY_KEY: "True"} if sdxl_vit_l_only(host) else {}


def fill_pasted_defaults(params: dict[str, str]) -> None:
    """Give pasted FlexDiffuse parameters the settings they leave out, at their defaults.

    A FlexDiffuse infotext without the key was made with the setting off: pasting it must
    turn the setting off, not keep whatever the user has now.
    """
    params.setdefault(SDXL_VIT_L_ONLY_KEY, "False")


def _suggestions(tower: KnownTower) -> Callable[[Host], list[str]]:
    def suggest(host: Host) -> list[str]:
        return [tower.default_source, *(str(path) for path in found_towers(host, tower))]

    return suggest


_said: set[str] = set()


def _say_once(message: str) -> None:
    """Show ``message`` on the console, the first time only (it would repeat every job).

    A warning, because webuis show no INFO records unless started with a log level.
    """
    if message not in _said:
        _said.add(message)
        logger.warning(message)


def _note_pickles(pickles: list[Path]) -> None:
    """Say that ``pickles`` were not read, and how to convert one (a line, said once)."""
    if not pickles:
        return
    names = ", ".join(str(path) for path in pickles[:PICKLES_NAMED])
    more = f" and {len(pickles) - PICKLES_NAMED} more" if len(pickles) > PICKLES_NAMED else ""
    _say_once(
        f"FlexDiffuse: not opening the pickles found where CLIP vision models are kept "
        f"({names}{more}): loading a pickle can run code hidden in it. To use one, convert it "
        f"to .safetensors beside it once, if you trust the file: {convert_command(pickles[0])}"
    )


def _families_of(tower: KnownTower) -> str:
    return ", ".join(f.name for f in FAMILIES if any(p.tower is tower for p in f.parts))
