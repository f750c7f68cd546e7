"""Fake ``modules.script_callbacks``: registration and the callers the glue relies on.

Like A1111, every caller catches ``Exception`` from a callback, reports it and goes on.
"""

from collections import namedtuple

from modules import errors

ScriptCallback = namedtuple("ScriptCallback", ["script", "callback"])


class CFGDenoiserParams:
    def __init__(
        self,
        x,
        image_cond,
        sigma,
        sampling_step,
        total_sampling_steps,
        text_cond,
        text_uncond,
        denoiser=None,
    ):
        self.x = x
        self.image_cond = image_cond
        self.sigma = sigma
        self.sampling_step = sampling_step
        self.total_sampling_steps = total_sampling_steps
        self.text_cond = text_cond
        self.text_uncond = text_uncond
        self.denoiser = denoiser


callback_map = {
    "callbacks_cfg_denoiser": [],
    "callbacks_ui_settings": [],
    "callbacks_before_ui": [],
    "callbacks_infotext_pasted": [],
    "callbacks_script_unloaded": [],
    "callbacks_app_started": [],
}


def clear_callbacks():
    for callback_list in callback_map.values():
        callback_list.clear()


def add_callback(callbacks, fun):
    callbacks.append(ScriptCallback("flexdiffuse", fun))


def _call_all(name, *args):
    for c in callback_map[name]:
        try:
            c.callback(*args)
        except Exception:
            errors.report(f"Error executing callback {name} for {c.script}", exc_info=True)


def cfg_denoiser_callback(params):
    _call_all("callbacks_cfg_denoiser", params)


def ui_settings_callback():
    _call_all("callbacks_ui_settings")


def before_ui_callback():
    _call_all("callbacks_before_ui")


def infotext_pasted_callback(infotext, params):
    _call_all("callbacks_infotext_pasted", infotext, params)


def app_started_callback(demo, app):
    _call_all("callbacks_app_started", demo, app)


def on_app_started(callback):
    add_callback(callback_map["callbacks_app_started"], callback)


def on_cfg_denoiser(callback):
    add_callback(callback_map["callbacks_cfg_denoiser"], callback)


def on_ui_settings(callback):
    add_callback(callback_map["callbacks_ui_settings"], callback)


def on_before_ui(callback):
    add_callback(callback_map["callbacks_before_ui"], callback)


def on_infotext_pasted(callback):
    add_callback(callback_map["callbacks_infotext_pasted"], callback)


def on_script_unloaded(callback):
    add_callback(callback_map["callbacks_script_unloaded"], callback)
