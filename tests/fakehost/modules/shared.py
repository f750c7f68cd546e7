"""Fake ``modules.shared``: options, job state and the loaded model."""

from types import SimpleNamespace


class OptionInfo:
    def __init__(
        self,
        default=None,
        label="",
        component=None,
        component_args=None,
        onchange=None,
        section=None,
        refresh=None,
        comment_before="",
        comment_after="",
        infotext=None,
        restrict_api=False,
        category_id=None,
    ):
        self.default = default
        self.label = label
        self.component = component
        self.component_args = component_args
        self.onchange = onchange
        self.section = section
        self.category_id = category_id
        self.refresh = refresh
        self.comment_before = comment_before
        self.comment_after = comment_after
        self.infotext = infotext
        self.restrict_api = restrict_api

    def info(self, info):
        self.comment_after += f"<span class='info'>({info})</span>"
        return self


class Options:
    def __init__(self):
        self.data = {"pad_cond_uncond": False, "pad_cond_uncond_v0": False}
        self.data_labels = {}

    def add_option(self, key, info):
        self.data_labels[key] = info
        if key not in self.data:
            self.data[key] = info.default

    def set(self, key, value):
        """Like the settings page: store, then run the option's onchange."""
        self.data[key] = value
        info = self.data_labels.get(key)
        if info is not None and info.onchange is not None:
            info.onchange()
        return True

    def __getattr__(self, item):
        data = self.__dict__.get("data", {})
        if item in data:
            return data[item]
        labels = self.__dict__.get("data_labels", {})
        if item in labels:
            return labels[item].default
        raise AttributeError(item)


class State:
    interrupted = False
    skipped = False
    sampling_step = 0
    sampling_steps = 0
    textinfo = None
    job = ""

    def skip(self):
        self.skipped = True

    def interrupt(self):
        self.interrupted = True

    def begin(self, job="(unknown)"):
        self.interrupted = False
        self.skipped = False
        self.textinfo = None
        self.job = job

    def end(self):
        self.job = ""


opts = Options()
state = State()
sd_model = None
cmd_opts = SimpleNamespace(disable_nan_check=True)
