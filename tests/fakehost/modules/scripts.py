"""Fake ``modules.scripts``: the Script base class and the always-on hook runner."""

import re
from collections import namedtuple
from dataclasses import dataclass

from modules import errors

AlwaysVisible = object()


@dataclass
class OnComponent:
    component: object


ScriptClassData = namedtuple("ScriptClassData", ["script_class", "path", "basedir", "module"])
scripts_data = []


class Script:
    name = None
    section = None
    filename = None
    args_from = None
    args_to = None
    alwayson = False
    is_txt2img = False
    is_img2img = False
    tabname = None
    group = None
    create_group = True
    infotext_fields = None
    paste_field_names = None
    api_info = None
    on_after_component_elem_id = None

    def title(self):
        raise NotImplementedError()

    def ui(self, is_img2img):
        pass

    def show(self, is_img2img):
        return True

    def run(self, p, *args):
        pass

    def setup(self, p, *args):
        pass

    def before_process(self, p, *args):
        pass

    def process(self, p, *args):
        pass

    def process_batch(self, p, *args, **kwargs):
        pass

    def postprocess_batch(self, p, *args, **kwargs):
        pass

    def postprocess(self, p, processed, *args):
        pass

    def before_hr(self, p, *args):
        pass

    def on_after_component(self, callback, *, elem_id):
        if self.on_after_component_elem_id is None:
            self.on_after_component_elem_id = []
        self.on_after_component_elem_id.append((elem_id, callback))

    def elem_id(self, item_id):
        need_tabname = self.show(True) == self.show(False)
        tabkind = "img2img" if self.is_img2img else "txt2img"
        tabname = f"{tabkind}_" if need_tabname else ""
        title = re.sub(r"[^a-z_0-9]", "", re.sub(r"\s", "_", self.title().lower()))
        return f"script_{tabname}{title}_{item_id}"


class ScriptRunner:
    """Runs always-on scripts' hooks the way A1111 does: exceptions are reported, not raised."""

    def __init__(self):
        self.alwayson_scripts = []
        self.inputs = [None]
        self.on_after_component_elem_id = {}

    def register(self, script):
        """Like ``initialize_scripts``: take the script's on_after_component callbacks."""
        for elem_id, callback in script.on_after_component_elem_id or []:
            self.on_after_component_elem_id.setdefault(elem_id, []).append((callback, script))

    def after_component(self, component, **kwargs):
        for callback, script in self.on_after_component_elem_id.get(component.elem_id, []):
            try:
                callback(OnComponent(component=component))
            except Exception:
                errors.report(f"Error running on_after_component: {script.filename}", exc_info=True)

    def add(self, script, is_img2img, controls):
        script.is_img2img = is_img2img
        script.is_txt2img = not is_img2img
        script.tabname = "img2img" if is_img2img else "txt2img"
        script.alwayson = True
        script.args_from = len(self.inputs)
        self.inputs += controls
        script.args_to = len(self.inputs)
        self.alwayson_scripts.append(script)

    def _each(self, hook, p, *extra):
        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                getattr(script, hook)(p, *extra, *script_args)
            except Exception:
                errors.report(f"Error running {hook}: {script.filename}", exc_info=True)

    def process(self, p):
        self._each("process", p)

    def before_hr(self, p):
        self._each("before_hr", p)

    def postprocess_batch(self, p, images, **kwargs):
        for script in self.alwayson_scripts:
            try:
                script_args = p.script_args[script.args_from : script.args_to]
                script.postprocess_batch(p, *script_args, images=images, **kwargs)
            except Exception:
                errors.report(f"Error running postprocess_batch: {script.filename}", exc_info=True)

    def postprocess(self, p, processed):
        self._each("postprocess", p, processed)
