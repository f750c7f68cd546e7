"""The webui script: the panel, the per-job setup, and the callbacks that guide sampling.

With ``hosts/``, the only module that imports the webui's ``modules`` (its script base class
and callback registry); everything else gets the host from here as an object.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from modules import script_callbacks, scripts

from .. import guides
from ..params import JOB_RECIPE
from . import hosts, settings
from .args import MASK_INPUTS, REFERENCE_INPUTS, ScriptArgs, make_params, parse_script_args
from .errors import NO_GUIDANCE_IMAGE, PLOTTED_BUT_OFF, FlexDiffuseError
from .infotext import NOTE_KEY, generation_params, is_flexdiffuse_infotext
from .job import FailedJob, GuidedJob, Job
from .prepare import build_guides
from .preview import previewer
from .references import (
    add_routes,
    load_named,
    read_references,
    reference_entries,
    reference_names,
    references_folder,
    saver,
)
from .runtime import Runtime
from .ui import build_panel
from .xyz import SavedReferences, add_axis_options

TITLE = "FlexDiffuse"

RUNTIME = Runtime(hosts.detect())
"""The host and vision towers of this webui process (kept across jobs and UI reloads)."""


class FlexDiffuseScript(scripts.Script):
    """The always-visible FlexDiffuse panel of txt2img and img2img."""

    def __init__(self) -> None:
        super().__init__()
        self.prompts: dict[str, Any] = {}  # the tabs' prompt boxes, for the mapping preview
        for tab in ("txt2img", "img2img"):
            self.on_after_component(self._keep_prompt, elem_id=f"{tab}_prompt")

    def _keep_prompt(self, created: Any) -> None:
        self.prompts[created.component.elem_id] = created.component

    def title(self) -> str:
        """The script's name; lower-cased, the API's ``alwayson_scripts`` key."""
        return TITLE

    def show(self, is_img2img: bool) -> Any:
        """Shown in both tabs, always (the accordion's checkbox enables it)."""
        return scripts.AlwaysVisible

    def ui(self, is_img2img: bool) -> list[Any]:
        """Build the panel; its controls' values become the script's arguments."""
        prompt = self.prompts.get("img2img_prompt" if is_img2img else "txt2img_prompt")
        panel = build_panel(RUNTIME.host, self.elem_id, prompt, previewer(RUNTIME), saver(RUNTIME))
        self.infotext_fields = panel.infotext_fields
        # "Send to" copies the controls whose paste keys are listed here (readers included).
        self.paste_field_names = panel.paste_field_names
        return panel.inputs

    def process(self, p: Any, *args: Any) -> None:
        """Set up guidance for the job ``p`` (once per job, before its first batch)."""
        start_job(p, args, RUNTIME)

    def postprocess_batch(self, p: Any, *args: Any, **kwargs: Any) -> None:
        """Correct the infotext of a batch the job did not guide as it claims."""
        host = RUNTIME.host
        job = host.job_of(p)
        if job is not None:
            job.after_batch(host.surface(p))


def start_job(p: Any, args: Sequence[Any], runtime: Runtime) -> Job | None:
    """Set up guidance for job ``p`` from the script's arguments and X/Y/Z overrides.

    A job that cannot be guided as asked gets a :class:`FailedJob` that stops it with the
    error when sampling starts (the webui would swallow an exception raised here). A job
    whose settings guide nothing is recorded as such, with a note. Returns the job, or None
    when FlexDiffuse is off or has nothing to guide.
    """
    host = runtime.host
    surface = host.surface(p)
    # X/Y/Z cells share one dict of generation parameters: a note is never carried over.
    surface.infotext.pop(NOTE_KEY, None)
    surface.infotext.pop(settings.SDXL_VIT_L_ONLY_KEY, None)
    try:
        script_args = _script_args(p, args, runtime)
    except Exception as error:  # any failure must stop the job, never leave it unguided
        job: Job = FailedJob(error, host)
    else:
        if script_args is None:
            return None
        digests = input_digests(script_args)
        inert = nothing_to_guide(script_args, surface.all_prompts())
        surface.infotext.update(
            generation_params(script_args.params, digests, guided=inert is None, note=inert or "")
        )
        surface.infotext.update(reference_entries(script_args))
        surface.infotext.update(settings.infotext_entries(host))
        if inert is not None:
            surface.comment(inert)
            return None
        job = GuidedJob(script_args, lambda width: build_guides(script_args, width, runtime), host)
    job.attach(p)
    return job


def input_digests(args: ScriptArgs) -> dict[str, str]:
    """The digest of each image given and of its mask, right after it, by argument name."""
    digests = {}
    for name, image in args.images.items():
        if name in args.references:
            continue  # a slot's reference replaces its image (and the mask painted on it)
        digests[name] = image.digest
        if name in args.masks:
            digests[MASK_INPUTS[name]] = args.masks[name].digest
    return digests


def slot_recipes(args: ScriptArgs) -> tuple[str, ...]:
    """The recipes of the images that guide: each slot's, or where a slot holding a saved
    reference keeps the job's settings, the recipes saved with the reference's images."""
    recipes: list[str] = []
    for slot in args.guidance_slots():
        ref = args.references.get(slot)
        saved = ref.reference if ref is not None else None
        if saved is not None and args.recipe(slot) == JOB_RECIPE:
            recipes += [image.recipe for image in saved.images]
        else:
            recipes.append(args.recipe(slot))
    return tuple(recipes)


def nothing_to_guide(args: ScriptArgs, prompts: Sequence[str]) -> str | None:
    """Why ``args`` move no token of a job of ``prompts`` at all, or None when they guide
    something (the core's rule, :func:`flexdiffuse.guides.nothing_to_guide`, for every way
    in: panel, API, X/Y/Z). Before anything is encoded a prompt is taken as empty by its text.
    Such a job runs unguided, says so, and its infotext records the settings with
    ``FlexDiffuse: False``.
    """
    return guides.nothing_to_guide(
        args.params,
        images=bool(args.guidance_slots()),
        negative=args.negative_image is not None,
        empty_prompt=any(not str(prompt).strip() for prompt in prompts),
        recipes=slot_recipes(args),
    )


def _script_args(p: Any, args: Sequence[Any], runtime: Runtime) -> ScriptArgs | None:
    script_args = parse_script_args(args)
    overrides = runtime.host.surface(p).plot_values()
    if not script_args.enabled:
        if overrides:
            raise FlexDiffuseError(PLOTTED_BUT_OFF)
        return None
    if runtime.host.unsupported:
        raise FlexDiffuseError(runtime.host.unsupported)
    script_args = read_references(script_args, runtime.host, overrides)
    if not script_args.images and not script_args.references:
        raise FlexDiffuseError(NO_GUIDANCE_IMAGE)
    values = {k: v for k, v in overrides.items() if k not in REFERENCE_INPUTS.values()}
    return replace(script_args, params=make_params(values, base=script_args.params))


def panel_args(p: Any) -> ScriptArgs:
    """The FlexDiffuse panel's arguments of processing object ``p`` (for the X/Y/Z checks)."""
    for script in getattr(p.scripts, "alwayson_scripts", []):
        if isinstance(script, FlexDiffuseScript):
            return parse_script_args(p.script_args[script.args_from : script.args_to])
    return ScriptArgs(False, {}, make_params({}))


def on_cfg_denoiser(params: Any) -> None:
    """Guide this step's prompt rows if its job is guided."""
    RUNTIME.host.on_step(params)


def on_before_ui() -> None:
    """Add the X/Y/Z plot axes, if the plot script is loaded."""
    for data in scripts.scripts_data:
        if data.script_class.__module__ == "xyz_grid.py":
            add_axis_options(data.module, panel_args, RUNTIME.host.surface, _saved_references())


def _saved_references() -> SavedReferences:
    host = RUNTIME.host
    return SavedReferences(
        lambda: reference_names(host), lambda name: load_named(references_folder(host), name)
    )


def on_infotext_pasted(infotext: str, params: dict[str, Any]) -> None:
    """Complete pasted FlexDiffuse parameters with the settings they leave at default."""
    if is_flexdiffuse_infotext(params):
        settings.fill_pasted_defaults(params)


def on_ui_settings() -> None:
    """Add FlexDiffuse's section to the Settings page."""
    specs = settings.setting_specs(_unload_if_not_kept, _unload_unnamed_towers)
    RUNTIME.host.add_settings(specs)


def _unload_if_not_kept() -> None:
    if not settings.keep_loaded(RUNTIME.host):
        RUNTIME.towers.unload()
        RUNTIME.host.free_memory()


def _unload_unnamed_towers() -> None:
    # Now rather than at the next job: the old tower's memory is back as soon as it is saved.
    if RUNTIME.towers.retain(settings.sources_in_use(RUNTIME.host)):
        RUNTIME.host.free_memory()


def register_callbacks() -> None:
    """Register the webui callbacks (run each time the webui loads the script file)."""
    RUNTIME.host.on_load()
    script_callbacks.on_cfg_denoiser(on_cfg_denoiser)
    script_callbacks.on_ui_settings(on_ui_settings)
    script_callbacks.on_before_ui(on_before_ui)
    script_callbacks.on_infotext_pasted(on_infotext_pasted)
    script_callbacks.on_app_started(lambda demo, app: add_routes(app, RUNTIME))
