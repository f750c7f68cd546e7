"""Old Forge (Forge Classic, reForge) laid over the fake A1111 of ``tests/fakehost``.

Old Forge keeps A1111's ``modules`` API and its ldm/sgm models; :func:`install` patches the
fake A1111 modules where old Forge behaves differently, and adds this folder's
``ldm_patched`` and ``modules_forge``. Every function here that mirrors an old-Forge one has
its signature, and every behaviour its source text, checked against the real trees by
``tests/forge/test_forge_fakes_match_the_hosts.py``:

- the hijack holds no text wrapper (``model_hijack.clip`` is None): the tokenizer is the
  model's ``cond_stage_model`` (SDXL: the conditioner, whose first embedder is CLIP-L's);
- reForge's "dynamic clip skip" encodes the prompts at several CLIP skips in
  ``setup_conds`` and ``CFGDenoiser.forward`` picks the set of each step itself, not from
  ``sampler_extra_args``;
- after the callbacks ``forge_sampler`` indexes SDXL's ``DictWithShape`` with
  ``advanced_indexing``; ``devices.torch_gc`` is ``model_management.soft_empty_cache``;
- the UI runs jobs through ``main_thread``, which prints a failed job's exception and drops
  it: the UI's error handler then fails on the None result.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from types import SimpleNamespace

import pytest

# reForge's and Forge 2's DictWithShape and backend indexing are the same (Classic's
# DictWithShape takes no shape argument; it is built by Classic's own prompt_parser).
from tests.fakehost_forge2.forge2_overlay import DictWithShape, compile_rows

HERE = Path(__file__).resolve().parent


def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
    """reForge's ``CFGDenoiser.forward``, its conditioning half (Classic has no dynamic
    clip skip: its option is never set)."""
    from modules import prompt_parser, shared

    if getattr(shared.opts, "dynamic_clip_skip_enabled", False):
        schedule = getattr(self.p, "dynamic_clip_skip_schedule", None)
        cond_sets = getattr(self.p, "dynamic_clip_skip_sets", None) or {}
        if schedule:
            selected = cond_sets.get(schedule[min(self.step, len(schedule) - 1)])
            if selected is not None:
                cond, uncond = selected
    cond_composition, cond = prompt_parser.reconstruct_multicond_batch(cond, self.step)
    uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)
    params = self.run_callbacks(x, sigma, image_cond, cond, uncond)
    for item in cond_composition:
        compile_rows(params.text_cond, [index for index, _ in item])
    compile_rows(params.text_uncond, list(range(params.text_uncond.shape[0])))
    # After the callbacks, ldm_patched's sampling_function drops the negative side at CFG
    # scale 1 (reForge's hires pass runs at its Hires CFG scale).
    if self.p.is_hr_pass and hasattr(self.p, "hr_cfg"):
        cond_scale = self.p.hr_cfg
    skipped = math.isclose(cond_scale, 1.0)
    self.log_unet_call(params.text_cond, None if skipped else params.text_uncond)
    return x


def wrap_gradio_call_no_job(func, extra_outputs=None, add_stats=False):
    """Old Forge's ``call_queue`` error handler: the exception raised in this thread."""

    def f(*args, **kwargs):
        try:
            return tuple(func(*args, **kwargs))
        except Exception as e:
            return (None, "", f"<div class='error'>{html.escape(f'{type(e).__name__}: {e}')}</div>")

    return f


class NoClipHijack:
    """Old Forge's ``sd_hijack.model_hijack``: ``clip`` is always None."""

    clip = None

    def __setattr__(self, name, value):
        pass  # the A1111 fake's helpers set ``clip``; old Forge's hijack() does nothing


DYNAMIC_SCHEDULE = [4, 3, 2, 2, 2, 2]


A1111 = {}
"""The fake A1111's own methods that the old-Forge ones below extend (set by install)."""


def setup_conds(self):
    """reForge's: with dynamic clip skip, one prompt set per CLIP skip of the schedule."""
    from modules import prompt_parser, shared

    A1111["setup_conds"](self)
    self.dynamic_clip_skip_schedule = self.dynamic_clip_skip_sets = None
    if not getattr(shared.opts, "dynamic_clip_skip_enabled", False):
        return
    prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
    negative = prompt_parser.SdConditioning(self.negative_prompts, is_negative_prompt=True)
    original, sets = shared.opts.data.get("CLIP_stop_at_last_layers", 1), {}
    for clip_skip in dict.fromkeys(DYNAMIC_SCHEDULE):
        shared.opts.data["CLIP_stop_at_last_layers"] = clip_skip
        c = prompt_parser.get_multicond_learned_conditioning(shared.sd_model, prompts, self.steps)
        uc = prompt_parser.get_learned_conditioning(shared.sd_model, negative, self.steps)
        sets[clip_skip] = (c, uc)
    shared.opts.data["CLIP_stop_at_last_layers"] = original
    self.dynamic_clip_skip_schedule, self.dynamic_clip_skip_sets = DYNAMIC_SCHEDULE, sets
    self.c, self.uc = sets[DYNAMIC_SCHEDULE[0]]


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake A1111 an old Forge for one test (undone by ``monkeypatch``)."""
    from modules import call_queue, devices, processing, prompt_parser, sd_hijack, shared
    from modules.sd_samplers_cfg_denoiser import CFGDenoiser
    from sdmodel import FakeSdModel

    monkeypatch.syspath_prepend(str(HERE))
    from ldm_patched.modules import model_management

    monkeypatch.setattr(model_management, "freed", [])
    monkeypatch.setattr(devices, "torch_gc", model_management.soft_empty_cache)
    monkeypatch.setattr(prompt_parser, "DictWithShape", DictWithShape)
    monkeypatch.setattr(sd_hijack, "model_hijack", NoClipHijack())
    monkeypatch.setattr(CFGDenoiser, "forward", forward)
    monkeypatch.setattr(
        call_queue, "wrap_gradio_call_no_job", wrap_gradio_call_no_job, raising=False
    )

    A1111["setup_conds"] = processing.StableDiffusionProcessing.setup_conds
    monkeypatch.setattr(processing.StableDiffusionProcessing, "setup_conds", setup_conds)

    # Forge's CLIP wrappers read CLIP skip from the options at each encoding.
    base_encode = FakeSdModel.get_learned_conditioning

    def get_learned_conditioning(model, texts):
        encoded = base_encode(model, texts)
        skip = shared.opts.data.get("CLIP_stop_at_last_layers", 1)
        if skip == 1:
            return encoded
        if isinstance(encoded, dict):
            return {**encoded, "crossattn": encoded["crossattn"] * (1 + skip / 10)}
        return encoded * (1 + skip / 10)

    def forge_objects(model):
        if "_forge_objects" not in vars(model):
            model._forge_objects = SimpleNamespace(unet=SimpleNamespace(model_options={}))
        return model._forge_objects

    monkeypatch.setattr(FakeSdModel, "get_learned_conditioning", get_learned_conditioning)
    monkeypatch.setattr(
        FakeSdModel, "cond_stage_model", property(lambda m: m.text_wrapper), raising=False
    )
    monkeypatch.setattr(FakeSdModel, "forge_objects", property(forge_objects), raising=False)
