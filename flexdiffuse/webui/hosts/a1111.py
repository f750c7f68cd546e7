"""AUTOMATIC1111 WebUI 1.7-1.10: the reference :class:`~.base.Host`.

It reads A1111's ``modules`` lazily, inside each method, so importing FlexDiffuse never
imports the webui and the fake host of the tests can be swapped in per test. Everything the
job reads of A1111's own objects is read here: the processing object ``p``
(:class:`A1111Surface`), the denoiser callback's parameters (:class:`A1111Step`) and the prompt
schedules (:func:`prompt_schedules`, :func:`negative_schedules`).
"""

from __future__ import annotations

import contextlib
import math
import sys
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..conds import Schedule, Schedules, token_states
from .base import END, PAD, START, Cond, HookedJob, PassConds, SettingSpec, StepConds

SETTINGS_SECTION = ("flexdiffuse", "FlexDiffuse")
SETTINGS_CATEGORY = "sd"
"""The Settings page category ("Stable Diffusion"), where image-guidance extensions sit."""


JOB_ATTRIBUTE = "flexdiffuse_job"
"""The attribute of ``p`` that holds its job's :class:`A1111Surface` (absent: not guided)."""


class A1111Host:
    """A1111's implementation of :class:`~.base.Host`.

    The Forge hosts subclass it and override what their backends do differently.
    """

    default_name = "AUTOMATIC1111 WebUI"
    """The webui's name in messages, where nothing more precise is known."""

    def __init__(self, name: str | None = None, unsupported: str | None = None) -> None:
        self.name = name or self.default_name
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

    def attach(self, p: Any, job: HookedJob) -> A1111Surface:
        surface = A1111Surface(p, job)
        setattr(p, JOB_ATTRIBUTE, surface)
        # The webui calls p.sample without the guard it puts around script hooks and
        # callbacks (which log an error and go on unguided): the job raises its errors here.
        sample = p.sample

        def sample_guided(*args: Any, **kwargs: Any) -> Any:
            return job.sample(surface, lambda: sample(*args, **kwargs))

        p.sample = sample_guided
        return surface

    def job_of(self, p: Any) -> HookedJob | None:
        surface = _attached(p)
        return surface.job if surface is not None else None

    def surface(self, p: Any) -> A1111Surface:
        return _attached(p) or A1111Surface(p, None)

    def on_step(self, params: Any) -> None:
        surface = _attached(getattr(params.denoiser, "p", None))
        if surface is not None and surface.job is not None:
            surface.job.on_step(A1111Step(self.step_conds(params), params, surface))

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

    def mask_editor(self, label: str, elem_id: str, height: int) -> Any:
        """The editor gradio offers, chosen by the components it has (never its version):
        gradio 3 (A1111 1.7-1.10, Forge Classic, reForge) paints masks with
        ``gr.Image``'s sketch tool, as A1111's inpaint tab does; gradio 4 (WebUI Forge, Forge
        Neo) dropped the tool for ``gr.ImageEditor``. (Forge's ForgeCanvas splits a picture
        and its strokes into two hidden text fields driven by its own script; gradio's
        editor keeps both in one value.)"""
        import gradio as gr

        common = {"label": label, "elem_id": elem_id, "interactive": True}
        if not has_image_editor():
            return gr.Image(
                source="upload",
                tool="sketch",
                type="pil",
                image_mode="RGBA",
                brush_color=MASK_BRUSH,
                height=height,
                **common,
            )
        # No height: gradio 4.40's editor does not scale its picture into one, so the
        # picture overflows it and hides the brush's toolbar; unset, it fits the column.
        # A short canvas keeps the empty editor small; a picture sets the canvas to its size.
        return gr.ImageEditor(
            canvas_size=EMPTY_CANVAS,
            sources=["upload"],
            type="pil",
            image_mode="RGBA",
            brush=gr.Brush(colors=[MASK_BRUSH], color_mode="fixed"),
            transforms=(),  # no crop: the mask stays on the whole image
            layers=False,
            format="png",  # the strokes' edges exactly (the default, WebP, is lossy)
            **common,
        )

    def input_accordion(self, value: bool, label: str, elem_id: str) -> Any:
        from modules.ui_components import InputAccordion

        return InputAccordion(value, label=label, elem_id=elem_id)

    def refresh_button(self, menu: Any, choices: Callable[[], list[str]], elem_id: str) -> Any:
        import gradio as gr
        from modules import ui_common

        make = getattr(ui_common, "create_refresh_button", None)
        if make is not None:  # the webui's own 🔄 tool button
            return make(menu, lambda: None, lambda: {"choices": choices()}, elem_id)
        button = gr.Button("\U0001f504", elem_id=elem_id)
        button.click(fn=lambda: gr.update(choices=choices()), outputs=[menu])
        return button

    def text_wrappers(self) -> list[Any]:
        """Where the loaded model's prompt tokenizer may be, first choice first (SDXL: the
        conditioner, whose first embedder is CLIP-L's): A1111's hijack wraps it."""
        from modules import sd_hijack

        return [getattr(sd_hijack.model_hijack, "clip", None)]


class A1111Surface:
    """A1111's processing object ``p`` as a :class:`~.base.JobSurface`, with its job."""

    def __init__(self, p: Any, job: HookedJob | None) -> None:
        self.p = p
        self.job = job
        self._prompts = _LastConverted(prompt_schedules)
        self._negatives = _LastConverted(negative_schedules)

    @property
    def infotext(self) -> MutableMapping[str, Any]:
        return self.p.extra_generation_params

    def comment(self, text: str) -> None:
        self.p.comment(text)

    def all_prompts(self) -> Sequence[str]:
        return getattr(self.p, "all_prompts", None) or [getattr(self.p, "prompt", "")]

    def prompts(self) -> Sequence[str]:
        p = self.p
        return p.hr_prompts if getattr(p, "is_hr_pass", False) else p.prompts

    def conds(self) -> PassConds:
        return self.pass_conds(self.p.c, self.p.uc)

    def pass_conds(self, cond: Any, uncond: Any) -> PassConds:
        """A1111's prompt and negative schedules as rows (the same rows while they stay)."""
        negatives = self._negatives(uncond) if uncond is not None else None
        return PassConds(self._prompts(cond), negatives)

    # The X/Y/Z plot hands each cell a shallow copy of one ``p``: a new dict each time.
    def plot_values(self) -> dict[str, Any]:
        return dict(getattr(self.p, PLOT_VALUES, {}))

    def set_plot_value(self, name: str, value: Any) -> None:
        setattr(self.p, PLOT_VALUES, {**self.plot_values(), name: value})

    def plot_axes(self) -> dict[str, list[Any]]:
        return dict(getattr(self.p, PLOT_AXES, {}))

    def set_plot_axes(self, axes: dict[str, list[Any]]) -> None:
        setattr(self.p, PLOT_AXES, dict(axes))


PLOT_VALUES = "flexdiffuse_overrides"
"""The attribute of a plot cell's ``p`` that holds the X/Y/Z values of its cell."""

PLOT_AXES = "flexdiffuse_axes"
"""The attribute of the plot's ``p`` that holds every FlexDiffuse axis's values."""


class A1111Step:
    """A1111's ``CFGDenoiserParams`` as a :class:`~.base.SamplingStep`."""

    def __init__(self, conds: StepConds, params: Any, job: A1111Surface) -> None:
        self.index, self.total = conds.step, conds.total
        self.job = job
        # Forge skips the negative prompt at CFG scale 1: no schedules, or no rows this step.
        self.negative_rows = conds.uncond is not None and params.text_uncond is not None
        self._conds, self._params = conds, params

    def conds(self) -> PassConds:
        return self.job.pass_conds(self._conds.cond, self._conds.uncond)

    def replace(self, prompt: Cond | None, negative: Cond | None) -> None:
        params = self._params
        if prompt is not None:
            params.text_cond = _in_form_of(params.text_cond, prompt)
        if negative is not None:
            params.text_uncond = _in_form_of(params.text_uncond, negative)


def prompt_schedules(multicond: Any) -> Schedules:
    """A ``MulticondLearnedConditioning`` as rows: per batch item, its AND sub-prompts."""
    return tuple(
        _schedule(item, sub_prompt.schedules)
        for item, sub_prompts in enumerate(multicond.batch)
        for sub_prompt in sub_prompts
    )


def negative_schedules(uncond: Any) -> Schedules:
    """The negative prompts' schedules (one ``ScheduledPromptConditioning`` list per item)."""
    return tuple(_schedule(item, schedules) for item, schedules in enumerate(uncond))


def _schedule(item: int, entries: Sequence[Any]) -> Schedule:
    return Schedule(
        item, tuple(entry.end_at_step for entry in entries), tuple(entry.cond for entry in entries)
    )


def _attached(p: Any) -> A1111Surface | None:
    return getattr(p, JOB_ATTRIBUTE, None) if p is not None else None


class _LastConverted:
    """The rows of the last structure converted, kept while the host hands the same one (a
    step reads them again at every step; their identity tells the job a new pass)."""

    def __init__(self, convert: Callable[[Any], Schedules]) -> None:
        self._convert = convert
        self._source: Any = None
        self._rows: Schedules | None = None

    def __call__(self, source: Any) -> Schedules:
        if self._rows is None or source is not self._source:
            self._source, self._rows = source, self._convert(source)
        return self._rows


def _in_form_of(text_cond: Cond, guided: Cond) -> Cond:
    """``guided`` in the form of the step's ``text_cond``, shapes checked.

    SDXL's batch is the host's ``DictWithShape``, which Forge's backend indexes by its own
    method: the guided dict keeps that class. It is made without its ``__init__``, whose
    signature differs between hosts (A1111 takes a shape, Forge Classic none).
    """
    old, new = token_states(text_cond), token_states(guided)
    if old.shape != new.shape:
        raise ValueError(
            f"This step's conditioning has shape {tuple(old.shape)}, but FlexDiffuse "
            f"built {tuple(new.shape)} from the job's prompts: another extension changed the "
            "conditioning before FlexDiffuse. Disable it or FlexDiffuse for this job."
        )
    if not isinstance(text_cond, dict):
        return guided
    replaced = type(text_cond).__new__(type(text_cond))
    replaced.update(text_cond)
    replaced.update(guided)
    return replaced


CLIP = "clip_vision"


def pass_cfg_scale(params: Any) -> float:
    """The CFG scale the host's sampler applies at this step: the job's, or the Hires CFG
    scale in a hires pass on hosts that have one (Forge, reForge)."""
    p = params.denoiser.p
    if getattr(p, "is_hr_pass", False) and hasattr(p, "hr_cfg"):
        return float(p.hr_cfg)
    scale = params.denoiser.sampler.sampler_extra_args.get("cond_scale", p.cfg_scale)
    return float(scale)


EMPTY_CANVAS = (512, 128)
"""gradio 4's mask editor's canvas before a picture is copied in (width, height)."""

MASK_BRUSH = "#ffffff"
"""The mask editor's brush: white, as a mask image marks what may be taken."""


def has_image_editor() -> bool:
    """Whether gradio paints masks in ``gr.ImageEditor`` (gradio 4), not with ``gr.Image``'s
    sketch tool (gradio 3). Probed by the component, not by ``gr.Image``'s signature: reForge
    wraps ``gr.Image.__init__`` in a ``*args, **kwargs`` function that hides its ``tool``."""
    import gradio as gr

    return hasattr(gr, "ImageEditor")


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
