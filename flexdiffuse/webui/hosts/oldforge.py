"""Old-Forge hosts: Forge Classic and reForge (A1111's models over ``ldm_patched``).

They keep A1111's ldm/sgm model objects with Forge's CLIP wrappers, but the hijack holds no
text wrapper: the prompt tokenizer is the model's ``cond_stage_model`` (SDXL: its first
embedder). The GPU belongs to ``ldm_patched/modules/model_management.py``. reForge's
"dynamic clip skip" swaps the step's prompt schedules from its own sets, outside
``sampler_extra_args``; the guided rows are built from the same sets. Unlike Forge 2, old
Forge hands the negative prompt to the step callbacks at CFG scale 1 and drops it only later,
in ``ldm_patched``'s ``sampling_function``: such a step reports no negative prompt
(:meth:`.ForgeHost._negative_ignored`), so a negative image is never claimed for a pass that
ignores it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .base import StepConds
from .forge import ForgeHost


class OldForgeHost(ForgeHost):
    """An old-Forge host (feature probe: ``ldm_patched.modules.model_management`` imports)."""

    memory_manager = "ldm_patched.modules.model_management"
    default_name = "reForge"  # Forge Classic's version says "classic" (hosts.FORK_NAMES)

    def text_wrappers(self) -> list[Any]:
        return [*super().text_wrappers(), getattr(self.sd_model(), "cond_stage_model", None)]

    def _scheduled_conds(self, params: Any) -> StepConds:
        conds = super()._scheduled_conds(params)
        if not self.option("dynamic_clip_skip_enabled", False):
            return conds
        # What reForge's CFGDenoiser.forward picks instead of sampler_extra_args.
        p = params.denoiser.p
        schedule = getattr(p, "dynamic_clip_skip_schedule", None)
        sets = getattr(p, "dynamic_clip_skip_sets", None) or {}
        if not schedule:
            return conds
        selected = sets.get(schedule[min(params.denoiser.step, len(schedule) - 1)])
        if selected is None:
            return conds
        cond, uncond = selected
        return replace(conds, cond=cond, uncond=uncond)
