"""Fake ``modules.sd_samplers_cfg_denoiser``: the conditioning half of ``CFGDenoiser.forward``.

Each call rebuilds the step's batches from the schedules, runs the ``on_cfg_denoiser``
callbacks, then skips or pads the negative half as A1111 does, and logs what the UNet gets.
"""

from dataclasses import dataclass

import torch

from modules import prompt_parser, shared
from modules.script_callbacks import CFGDenoiserParams, cfg_denoiser_callback


@dataclass
class UnetCall:
    step: int
    is_hr_pass: bool
    text_cond: object
    text_uncond: object  # None when s_min_uncond skipped the negative half


class CFGDenoiser(torch.nn.Module):
    def __init__(self, sampler):
        super().__init__()
        self.sampler = sampler
        self.step = 0
        self.total_steps = None
        self.padded_cond_uncond = False
        self.p = None

    def forward(self, x, sigma, uncond, cond, cond_scale, s_min_uncond, image_cond):
        conds_list, tensor = prompt_parser.reconstruct_multicond_batch(cond, self.step)
        uncond = prompt_parser.reconstruct_cond_batch(uncond, self.step)
        params = self.run_callbacks(x, sigma, image_cond, tensor, uncond)
        tensor, uncond = params.text_cond, params.text_uncond

        skip_uncond = bool(self.step % 2 and s_min_uncond > 0 and sigma[0] < s_min_uncond)
        if shared.opts.pad_cond_uncond and tensor.shape[1] != uncond.shape[1]:
            tensor, uncond = self.pad_cond_uncond(tensor, uncond)
        # Unpadded batches of different token counts go through the UNet separately.
        self.log_unet_call(tensor, None if skip_uncond else uncond)
        return x

    def run_callbacks(self, x, sigma, image_cond, cond, uncond):
        """The step's conditionings through the ``on_cfg_denoiser`` callbacks, as every host
        builds them (the Forge fakes' ``forward`` calls this too); returns the params."""
        params = CFGDenoiserParams(
            x,
            image_cond,
            sigma,
            shared.state.sampling_step,
            shared.state.sampling_steps,
            cond,
            uncond,
            self,
        )
        cfg_denoiser_callback(params)
        return params

    def log_unet_call(self, cond, uncond):
        """Record what the UNet gets this step, and count the step."""
        self.p.unet_calls.append(UnetCall(self.step, self.p.is_hr_pass, cond, uncond))
        self.step += 1

    def update_inner_model(self):
        c, uc = self.p.get_conds()
        self.sampler.sampler_extra_args["cond"] = c
        self.sampler.sampler_extra_args["uncond"] = uc

    def pad_cond_uncond(self, cond, uncond):
        empty = shared.sd_model.cond_stage_model_empty_prompt
        repeats = (cond.shape[1] - uncond.shape[1]) // empty.shape[1]
        if repeats < 0:
            cond = _pad(cond, -repeats, empty)
        elif repeats > 0:
            uncond = _pad(uncond, repeats, empty)
        self.padded_cond_uncond = True
        return cond, uncond


def _pad(batch, repeats, empty):
    if isinstance(batch, dict):
        batch["crossattn"] = _pad(batch["crossattn"], repeats, empty)
        return batch
    return torch.cat([batch, empty.repeat((batch.shape[0], repeats, 1))], dim=1)
