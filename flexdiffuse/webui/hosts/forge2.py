"""Forge 2 hosts: WebUI Forge ``main``, Forge Neo, ersatzForge (the ``backend/`` package).

Their models are ``backend.diffusion_engine`` engines, not ldm/sgm: the prompt tokenizer is
the engine's ``text_processing_engine`` (SDXL: ``text_processing_engine_l``), CLIP skip is
set on the engine (``set_clip_skip``) rather than read from the options at encoding, and the
checkpoint loads at the first generation (before it, ``shared.sd_model`` is a placeholder).
The GPU belongs to ``backend/memory_management.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..conds import Cond
from ..errors import FlexDiffuseError
from .forge import ForgeHost


class Forge2Host(ForgeHost):
    """A Forge 2 host (feature probe: ``backend.memory_management`` imports)."""

    memory_manager = "backend.memory_management"

    def on_load(self) -> None:
        super().on_load()
        from modules import shared

        # Gradio 4 saves an image that one control hands to another (Send to img2img copies
        # the guidance images) into the webui's temporary folder, which these hosts create
        # only when its setting changes: without it the whole Send to fails, prompt included.
        folder = str(getattr(shared.opts, "temp_dir", "") or "")
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)

    def sd_model(self) -> Any:
        model = super().sd_model()
        # Before the first generation Forge 2 holds a placeholder without a text encoder.
        return model if hasattr(model, "get_learned_conditioning") else None

    def load_model(self) -> Any:
        if self.sd_model() is None:
            from modules import sd_models

            try:
                sd_models.forge_model_reload()
            except Exception as error:
                raise FlexDiffuseError(
                    f"{self.name} could not load the selected checkpoint ({error}). Select a "
                    "checkpoint and generate once, then preview again."
                ) from error
        return self.sd_model()

    def encode_prompt(self, text: str) -> Cond:
        from modules import shared

        # processing.py sets it before each job's prompts; an extra prompt must do the same.
        shared.sd_model.set_clip_skip(int(getattr(shared.opts, "CLIP_stop_at_last_layers", 1)))
        return super().encode_prompt(text)

    def text_wrappers(self) -> list[Any]:
        model = self.sd_model()
        return [
            getattr(model, "text_processing_engine_l", None),
            getattr(model, "text_processing_engine", None),
        ]
