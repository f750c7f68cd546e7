"""Fake ``comfy_api.latest``: the extension class and the ``io`` and ``ui`` modules."""

from abc import ABC, abstractmethod

from . import _io as io
from . import _ui as ui


class ComfyExtension(ABC):
    async def on_load(self) -> None:
        """Nothing to set up."""

    @abstractmethod
    async def get_node_list(self):
        """The extension's node classes."""


__all__ = ["ComfyExtension", "io", "ui"]
