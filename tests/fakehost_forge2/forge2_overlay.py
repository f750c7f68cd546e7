"""Forge 2 (WebUI Forge, Forge Neo, ersatzForge) laid over the fake A1111 of ``tests/fakehost``.

Forge 2 keeps A1111's ``modules`` API; :func:`install` patches the fake A1111 modules where
Forge 2 behaves differently, and adds this folder's ``backend``, ``modules_forge`` and
``modules.sd_models``. Every function here that mirrors a Forge 2 one has its signature, and
every behaviour its source text, checked against the real tree by
``tests/forge/test_forge_fakes_match_the_hosts.py``:

- ``get_conds_with_caching`` sets CLIP skip on the engine (``set_clip_skip``) before encoding;
  ``setup_conds`` drops the negative prompt at CFG scale 1 (``p.uc = None``), and the hires
  pass at ``hr_cfg`` 1 (the API's default);
- ``CFGDenoiser.forward`` takes ``uncond`` None, and after the callbacks the backend compiles
  the conditioning, indexing SDXL's ``DictWithShape`` with ``advanced_indexing``;
- the model is a ``backend.diffusion_engine`` engine: the tokenizer is its
  ``text_processing_engine`` (SDXL: ``text_processing_engine_l``), and the hijack has no
  ``clip``; ``devices.torch_gc`` is the memory manager's ``soft_empty_cache``;
- the UI runs jobs through ``main_thread`` and shows ``main_thread.last_exception``.
"""

from __future__ import annotations

import html
from pathlib import Path
from types import SimpleNamespace

import pytest

HERE = Path(__file__).resolve().parent


class DictWithShape(dict):
    """Forge's ``prompt_parser.DictWithShape``: SDXL's batch, indexable by the backend."""

    def __init__(self, x, shape=None):
        super().__init__()
        self.update(x)

    @property
    def shape(self):
        return self["crossattn"].shape

    def advanced_indexing(self, item):
        return DictWithShape({k: v[item] for k, v in self.items()})


def compile_rows(cond, rows):
    """What ``backend/sampling/condition.py`` does with the callback's conditioning."""
    if hasattr(cond, "advanced_indexing"):
        return cond.advanced_indexing(rows)
    return cond[rows]  # a plain dict here raises TypeError, as in Forge


class NoClipHijack:
    """Forge 2's ``sd_hijack.model_hijack``: a stub without a text encoder wrapper."""

    def __setattr__(self, name, value):
        pass  # the A1111 fake's helpers set ``clip``; Forge 2 has none


def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
    """Forge 2's ``CFGDenoiser.forward``, its conditioning half."""
    from modules import prompt_parser

    cond_composition, cond = prompt_parser.reconstruct_multicond_batch(cond, self.step)
    uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step) if uncond is not None else None
    params = self.run_callbacks(x, sigma, image_cond, cond, uncond)
    for item in cond_composition:
        compile_rows(params.text_cond, [index for index, _ in item])
    if params.text_uncond is not None:
        compile_rows(params.text_uncond, list(range(params.text_uncond.shape[0])))
    self.log_unet_call(params.text_cond, params.text_uncond)
    return x


def wrap_gradio_call_no_job(func, extra_outputs=None, add_stats=False):
    """Forge 2's ``call_queue.wrap_gradio_call_no_job``: the error div shows the main
    thread's exception when the job's result is None."""
    from modules_forge import main_thread

    def f(*args, **kwargs):
        try:
            return tuple(func(*args, **kwargs))
        except Exception as error:
            shown = error if main_thread.last_exception is None else main_thread.last_exception
            message = f"{type(shown).__name__}: {shown}"
            return (None, "", f"<div class='error'>{html.escape(message)}</div>")

    return f


A1111 = {}
"""The fake A1111's own methods that the Forge 2 ones below extend (set by install)."""


def get_conds_with_caching(
    self, function, required_prompts, steps, caches, extra_network_data=None, hires_steps=None
):
    """Forge 2's: CLIP skip is set on the engine before the prompts are encoded."""
    from modules import shared

    shared.sd_model.set_clip_skip(int(getattr(shared.opts, "CLIP_stop_at_last_layers", 1)))
    return A1111["get_conds_with_caching"](
        self, function, required_prompts, steps, caches, extra_network_data, hires_steps
    )


def setup_conds(self):
    """Forge 2's: no negative prompt at CFG scale 1."""
    A1111["setup_conds"](self)
    if self.cfg_scale == 1:
        self.uc = None


def calculate_hr_conds(self):
    """Forge 2's: no negative prompt in the hires pass at ``hr_cfg`` 1."""
    A1111["calculate_hr_conds"](self)
    if self.hr_cfg == 1:
        self.hr_uc = None


def txt2img_init(self, hr_cfg=1.0, **kwargs):
    """``hr_cfg`` defaults to 1, as in Forge 2's dataclass (the API's default)."""
    A1111["txt2img_init"](self, **kwargs)
    self.hr_cfg = hr_cfg


def install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the fake A1111 a Forge 2 for one test (undone by ``monkeypatch``)."""
    import modules
    from modules import call_queue, devices, processing, prompt_parser, sd_hijack
    from modules.sd_samplers_cfg_denoiser import CFGDenoiser
    from sdmodel import FakeSdModel

    monkeypatch.syspath_prepend(str(HERE))
    monkeypatch.setattr(modules, "__path__", [*modules.__path__, str(HERE / "modules")])
    from backend import memory_management

    monkeypatch.setattr(memory_management, "freed", [])
    monkeypatch.setattr(devices, "torch_gc", memory_management.soft_empty_cache)
    monkeypatch.setattr(prompt_parser, "DictWithShape", DictWithShape)
    monkeypatch.setattr(sd_hijack, "model_hijack", NoClipHijack())
    monkeypatch.setattr(CFGDenoiser, "forward", forward)
    monkeypatch.setattr(
        call_queue, "wrap_gradio_call_no_job", wrap_gradio_call_no_job, raising=False
    )

    base, txt2img = (
        processing.StableDiffusionProcessing,
        processing.StableDiffusionProcessingTxt2Img,
    )
    A1111.update(
        get_conds_with_caching=base.get_conds_with_caching,
        setup_conds=base.setup_conds,
        calculate_hr_conds=txt2img.calculate_hr_conds,
        txt2img_init=txt2img.__init__,
    )
    monkeypatch.setattr(base, "get_conds_with_caching", get_conds_with_caching)
    monkeypatch.setattr(base, "setup_conds", setup_conds)
    monkeypatch.setattr(txt2img, "calculate_hr_conds", calculate_hr_conds)
    monkeypatch.setattr(txt2img, "__init__", txt2img_init)

    # The engine: tokenizers of its own, CLIP skip set on it, Forge's objects.
    def engine(attribute, sdxl):
        def get(model):
            if model.is_sdxl != sdxl:
                raise AttributeError(attribute)
            return model.text_wrapper.embedders[0] if sdxl else model.text_wrapper

        return property(get)

    def forge_objects(model):
        if "_forge_objects" not in vars(model):
            unet = SimpleNamespace(model_options={})
            model._forge_objects = SimpleNamespace(unet=unet)
        return model._forge_objects

    def set_clip_skip(model, clip_skip):
        model.clip_skips = [*getattr(model, "clip_skips", []), clip_skip]

    monkeypatch.setattr(
        FakeSdModel, "text_processing_engine", engine("engine", False), raising=False
    )
    monkeypatch.setattr(
        FakeSdModel, "text_processing_engine_l", engine("engine_l", True), raising=False
    )
    monkeypatch.setattr(FakeSdModel, "set_clip_skip", set_clip_skip, raising=False)
    monkeypatch.setattr(FakeSdModel, "forge_objects", property(forge_objects), raising=False)
