"""The A1111 script: the panel, the per-job setup, and the callbacks that guide sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from modules import script_callbacks, scripts

from ..encoder import image_digest
from . import host
from .args import GuidanceRequest, make_params, parse_script_args
from .conds import cond_width
from .errors import FlexDiffuseError
from .infotext import PANEL_KEYS, complete_pasted, generation_params
from .job import GuidedJob, job_of
from .prepare import build_guidance
from .preview import preview_from_panel
from .settings import register_settings
from .ui import build_panel
from .xyz import add_axis_options, overrides_of

TITLE = "FlexDiffuse"
FORGE_WARNING = (
    "**FlexDiffuse does not support WebUI Forge yet**: guided jobs stop with an error. Use "
    "AUTOMATIC1111 WebUI 1.7 to 1.10."
)


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
        panel = build_panel(
            self.elem_id,
            warning=FORGE_WARNING if host.is_forge() else None,
            prompt=prompt,
            previewer=preview_from_panel,
        )
        self.infotext_fields = panel.infotext_fields
        self.paste_field_names = list(PANEL_KEYS)
        return panel.inputs

    def process(self, p: Any, *args: Any) -> None:
        """Set up guidance for the job ``p`` (once per job, before its first batch)."""
        start_job(p, args)


def start_job(p: Any, args: Sequence[Any]) -> GuidedJob | None:
    """Set up guidance for job ``p`` from the script's arguments and X/Y/Z overrides.

    A job that cannot be guided as asked gets a job that stops it with the error when
    sampling starts (A1111 would swallow an exception raised here). Returns the job, or None
    when FlexDiffuse is off.
    """
    try:
        request = _request(p, args)
    except Exception as error:  # any failure must stop the job, never leave it unguided
        job = GuidedJob.failed(error)
    else:
        if request is None:
            return None
        digests = {slot: image_digest(image) for slot, image in request.images.items()}
        p.extra_generation_params.update(generation_params(request.params, digests))
        job = GuidedJob(
            request,
            lambda job_p: build_guidance(request, cond_width(job_p.c)),
            interrupt=host.interrupt,
        )
    job.attach(p)
    return job


def _request(p: Any, args: Sequence[Any]) -> GuidanceRequest | None:
    request = parse_script_args(args)
    overrides = overrides_of(p)
    if not request.enabled:
        if overrides:
            raise FlexDiffuseError(
                "The X/Y/Z plot sets FlexDiffuse parameters, but FlexDiffuse is off. Enable it "
                "in the FlexDiffuse panel and give it a guidance image."
            )
        return None
    host.check_host()
    if not request.images:
        raise FlexDiffuseError(
            "FlexDiffuse is enabled but has no guidance image. Drop an image into the "
            "FlexDiffuse panel (API: send it base64-encoded), or disable FlexDiffuse."
        )
    return replace(request, params=make_params(overrides, base=request.params))


def on_cfg_denoiser(params: Any) -> None:
    """Guide this step's prompt rows if its job is guided."""
    job = job_of(getattr(params.denoiser, "p", None))
    if job is not None:
        job.on_step(params)


def on_before_ui() -> None:
    """Add the X/Y/Z plot axes, if the plot script is loaded."""
    for data in scripts.scripts_data:
        if data.script_class.__module__ == "xyz_grid.py":
            add_axis_options(data.module)


def on_infotext_pasted(infotext: str, params: dict[str, Any]) -> None:
    """Make pasted parameters set every FlexDiffuse control."""
    complete_pasted(params)


def register_callbacks() -> None:
    """Register the webui callbacks (run each time A1111 loads the script file)."""
    script_callbacks.on_cfg_denoiser(on_cfg_denoiser)
    script_callbacks.on_ui_settings(register_settings)
    script_callbacks.on_before_ui(on_before_ui)
    script_callbacks.on_infotext_pasted(on_infotext_pasted)
