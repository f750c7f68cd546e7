"""AUTOMATIC1111 WebUI 1.7-1.10: the reference :class:`~.base.Host`.

It reads A1111's ``modules`` lazily, inside each method, so importing FlexDiffuse never
imports the webui and the fake host of the tests can be swapped in per test.
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from .base import END, PAD, START, Cond, SettingSpec, StepConds

SETTINGS_SECTION = ("flexdiffuse", "FlexDiffuse")
SETTINGS_CATEGORY = "sd"
"""The Settings page category ("Stable Diffusion"), where image-guidance extensions sit."""


class A1111Host:
    """A1111's implementation of :class:`~.base.Host`.

    The Forge hosts subclass it and override what their backends do differently.
    """

    def __init__(self, name: str = "AUTOMATIC1111 WebUI", unsupported: str | None = None) -> None:
        self.name = name
        self.unsupported = unsupported

    def option(self, key: str, default: Any) -> Any:
        from modules import shared

        return shared.opts.data.get(key, default)

    def add_settings(self, settings: Sequence[SettingSpec]) -> None:
        import gradio as gr
        from modules import shared

        for setting in settings:
            component, args, refresh = None, None, None
            if setting.choices is not None:
                component, args = gr.Radio, {"choices": list(setting.choices)}
            elif setting.suggestions is not None:
                # Like A1111's own checkpoint and VAE settings: the choices are asked for when
                # the page is built and again by the refresh button (which calls ``refresh``,
                # then these args). Any text is kept too: an id, a folder or a file.
                component, args = _free_text_dropdown(), self._dropdown_args(setting.suggestions)
                refresh = _nothing_to_reload
            info = shared.OptionInfo(
                setting.default,
                setting.label,
                component,
                args,
                onchange=setting.onchange,
                section=SETTINGS_SECTION,
                refresh=refresh,
                infotext=setting.infotext,
                category_id=SETTINGS_CATEGORY,
            )
            shared.opts.add_option(setting.key, info.info(setting.info))

    def _dropdown_args(
        self, suggestions: Callable[[Any], Sequence[str]]
    ) -> Callable[[], dict[str, Any]]:
        return lambda: {"choices": list(suggestions(self))}

    def sd_model(self) -> Any:
        from modules import shared

        return shared.sd_model

    def load_model(self) -> Any:
        return self.sd_model()  # A1111 loads the checkpoint at startup

    def encode_prompt(self, text: str) -> Cond:
        from modules import devices, shared

        with torch.no_grad(), devices.autocast():
            cond = shared.sd_model.get_learned_conditioning([text])
        if isinstance(cond, dict):
            return {key: value[0] for key, value in cond.items()}
        return cond[0]

    def step_conds(self, params: Any) -> StepConds:
        conds = self._scheduled_conds(params)
        if conds.uncond is not None and self._negative_ignored(params):
            return replace(conds, uncond=None)  # a negative image there would guide nothing
        return conds

    def _scheduled_conds(self, params: Any) -> StepConds:
        denoiser = params.denoiser
        conds = denoiser.sampler.sampler_extra_args
        # The denoiser counts its own calls against the calls expected for this pass (A1111
        # measures the refiner switch the same way); the state's counters are the fallback.
        step, total = denoiser.step, getattr(denoiser, "total_steps", None)
        if not total:
            step, total = params.sampling_step, params.total_sampling_steps
        return StepConds(conds["cond"], conds.get("uncond"), step, total or 0)

    def _negative_ignored(self, params: Any) -> bool:
        """Whether this step's negative prompt leaves the image as it is: at a CFG scale of
        1, A1111 adds each prompt's difference from it back in full, so it cancels out,
        unless a prompt's AND weights do not add up to 1."""
        if not math.isclose(pass_cfg_scale(params), 1.0):
            return False
        batch = getattr(params.denoiser.sampler.sampler_extra_args["cond"], "batch", None)
        return batch is not None and all(
            math.isclose(sum(part.weight for part in prompt), 1.0) for prompt in batch
        )

    def tower_device_and_dtype(self, on_cpu: bool) -> tuple[torch.device, torch.dtype]:
        from modules import devices

        if on_cpu:
            return devices.cpu, torch.float32
        return devices.device, tower_dtype(devices.dtype)

    def models_dir(self) -> Path:
        from modules import paths

        return Path(paths.models_path)

    def tower_folders(self) -> list[Path]:
        from modules import paths, shared

        models = Path(paths.models_path)
        # No webui's paths module names a CLIP vision folder: these are made by extensions and
        # by users following IP-Adapter guides (ComfyUI's name is clip_vision). Newer versions
        # of the ControlNet extension keep their models in the webui's models folder, so
        # their CLIP vision files land in models/clip_vision.
        folders = [models / "clip_vision", models / "ClipVision"]
        # The ControlNet extension's models folder can be moved by its setting or command-line
        # flag; older versions keep it in annotator/downloads inside the extension.
        annotators = shared.opts.data.get("control_net_modules_path") or getattr(
            shared.cmd_opts, "controlnet_annotator_models_path", None
        )
        if annotators:
            root = Path(str(annotators)).expanduser()
            folders.append((root if root.is_absolute() else Path(paths.data_path) / root) / CLIP)
        for extensions in (paths.extensions_dir, paths.extensions_builtin_dir):
            folders.extend(sorted(Path(extensions).glob(f"*/annotator/downloads/{CLIP}")))
        # Forge's built-in ControlNet downloads IP-Adapter's and Revision's vision towers as
        # CLIP-ViT-H-14.safetensors and CLIP-ViT-bigG.safetensors into its preprocessor folder.
        forge = sys.modules.get("modules_forge.shared")
        folders.append(Path(getattr(forge, "preprocessor_dir", models / "ControlNetPreprocessor")))
        return _unique_folders(folders)

    def set_progress_text(self, text: str | None) -> None:
        from modules import shared

        shared.state.textinfo = text

    def stop_requested(self) -> bool:
        from modules import shared

        state = shared.state
        # The flags stay set after an interrupted job ends (until the next begins): outside
        # a job (the mapping preview) nothing was asked to stop.
        return bool(state.job) and bool(state.interrupted or state.skipped)

    def free_memory(self) -> None:
        from modules import devices

        devices.torch_gc()

    def make_room(self, size: int, device: torch.device) -> None:
        pass  # A1111 keeps its models where they are; nothing to ask

    def tower_park(self, device: torch.device) -> torch.device | None:
        return None

    def conditioning_override(self) -> str | None:
        return None

    def on_load(self) -> None:
        pass

    def interrupt(self) -> None:
        from modules import shared

        shared.state.interrupt()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        from modules.call_queue import queue_lock

        with queue_lock:
            yield

    def first_scheduled_text(self, prompt: str) -> str:
        from modules import extra_networks, prompt_parser

        text, _ = extra_networks.parse_prompt(prompt)
        _, sub_prompts, _ = prompt_parser.get_multicond_prompt_list([text])
        schedule = prompt_parser.get_learned_conditioning_prompt_schedules([sub_prompts[0]], 100)
        return schedule[0][0][1]

    def prompt_token_labels(self, prompt: str) -> list[list[str]] | None:
        wrapper = _first_tokenizer(self.text_wrappers())
        decode = _token_decoder(wrapper) if wrapper is not None else None
        if decode is None:
            return None
        chunks, _ = wrapper.tokenize_line(prompt)
        labels = []
        for chunk in chunks:
            row = [START] + [decode(token) for token in chunk.tokens[1:]]
            if wrapper.id_end in chunk.tokens[1:]:
                end = chunk.tokens.index(wrapper.id_end, 1)
                row[end:] = [END] + [PAD] * (len(row) - end - 1)
            for fix in chunk.fixes:  # an embedding fills the positions after its offset (+1: BOS)
                width = int(getattr(fix.embedding, "vectors", 1))
                names = [fix.embedding.name] + ["\u2026"] * (width - 1)
                row[fix.offset + 1 : fix.offset + 1 + width] = names
            labels.append(row)
        return labels

    def warn(self, message: str) -> None:
        import gradio as gr

        # Outside a gradio request (the API) there is nobody to show a toast to.
        with contextlib.suppress(Exception):
            gr.Warning(message)

    def input_accordion(self, value: bool, label: str, elem_id: str) -> Any:
        from modules.ui_components import InputAccordion

        return InputAccordion(value, label=label, elem_id=elem_id)

    def text_wrappers(self) -> list[Any]:
        """Where the loaded model's prompt tokenizer may be, first choice first (SDXL: the
        conditioner, whose first embedder is CLIP-L's): A1111's hijack wraps it."""
        from modules import sd_hijack

        return [getattr(sd_hijack.model_hijack, "clip", None)]


CLIP = "clip_vision"


def pass_cfg_scale(params: Any) -> float:
    """The CFG scale the host's sampler applies at this step: the job's, or the Hires CFG
    scale in a hires pass on hosts that have one (Forge, reForge)."""
    p = params.denoiser.p
    if getattr(p, "is_hr_pass", False) and hasattr(p, "hr_cfg"):
        return float(p.hr_cfg)
    scale = params.denoiser.sampler.sampler_extra_args.get("cond_scale", p.cfg_scale)
    return float(scale)


def _free_text_dropdown() -> Callable[..., Any]:
    """Makes a dropdown that also keeps typed text (an id, a folder, a file).

    ``allow_custom_value`` is set here, not in the settings' component args: A1111's refresh
    button passes those args to ``Dropdown.update``, which refuses it in gradio 3.41. A
    function, not a subclass: gradio 4 (Forge) sends a component's props to the page by
    the parameters of its class's ``__init__``, so a subclass taking ``**kwargs`` arrives
    with none, and the page stops loading.
    """
    import gradio as gr

    def dropdown(**kwargs: Any) -> Any:
        return gr.Dropdown(allow_custom_value=True, **kwargs)

    return dropdown


def _nothing_to_reload() -> None:
    """The refresh button's reload step: the choices are found again when asked for."""


def _unique_folders(folders: list[Path]) -> list[Path]:
    """``folders`` without repeats (two spellings or links of one folder), in order."""
    unique: list[Path] = []
    seen: set[object] = set()
    for folder in folders:
        try:
            stat = folder.stat()
            key: object = (stat.st_dev, stat.st_ino)
        except OSError:  # missing: keep it listed, by its name
            key = str(folder)
        if key not in seen:
            seen.add(key)
            unique.append(folder)
    return unique


def tower_dtype(dtype: torch.dtype) -> torch.dtype:
    """The webui's dtype if a vision tower can run in it, else float16 (an fp8 UNet)."""
    if dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return dtype
    return torch.float16


def _first_tokenizer(candidates: Sequence[Any]) -> Any:
    """The first candidate, or embedder of one, with A1111's ``tokenize_line`` duck type."""
    for candidate in candidates:
        for wrapper in [candidate, *getattr(candidate, "embedders", [])]:
            if hasattr(wrapper, "tokenize_line"):
                return wrapper
    return None


def _token_decoder(wrapper: Any) -> Callable[[int], str] | None:
    tokenizer = getattr(wrapper, "tokenizer", None)
    if hasattr(tokenizer, "convert_ids_to_tokens"):  # transformers' CLIPTokenizer (CLIP-L)
        return lambda token: tokenizer.convert_ids_to_tokens(token).replace("</w>", "")
    open_clip = getattr(sys.modules.get("modules.sd_hijack_open_clip"), "tokenizer", None)
    if hasattr(open_clip, "decoder"):  # OpenCLIP's tokenizer (SD 2.x)
        return lambda token: open_clip.decoder.get(token, "?").replace("</w>", "")
    return None
