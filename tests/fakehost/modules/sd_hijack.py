"""Fake ``modules.sd_hijack``: the hijack's text wrapper of the loaded model (``clip``)."""

from types import SimpleNamespace

model_hijack = SimpleNamespace(clip=None)
