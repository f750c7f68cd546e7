"""Fake ``modules.processing``: the parts of a job that matter to conditioning hooks.

``process_images`` runs the always-on scripts' ``process`` (exceptions reported, as A1111
does), then per batch: prompts, ``setup_conds`` (class-level caches reused across jobs),
``p.sample(...)`` with keyword arguments; txt2img runs a hires-fix second pass with its own
conditionings when asked, img2img runs fewer steps. Every step goes through the fake
``CFGDenoiser``, which logs what the UNet gets in ``p.unet_calls``.
"""

import torch

from modules import infotext_utils, prompt_parser, shared
from modules.sd_samplers_cfg_denoiser import CFGDenoiser


class FakeSampler:
    def __init__(self):
        self.sampler_extra_args = None
        self.model_wrap_cfg = CFGDenoiser(self)

    def sample(self, p, x, conditioning, unconditional_conditioning, steps):
        self.model_wrap_cfg.p = p
        self.sampler_extra_args = {
            "cond": conditioning,
            "image_cond": None,
            "uncond": unconditional_conditioning,
            "cond_scale": p.cfg_scale,
            "s_min_uncond": p.s_min_uncond,
        }
        sigmas = torch.linspace(10.0, 0.1, steps)
        self.model_wrap_cfg.total_steps = steps  # one denoiser call per step (Euler)
        shared.state.sampling_steps = steps
        for step in range(steps):
            if shared.state.interrupted:
                break
            self.apply_refiner(p, step / steps)
            shared.state.sampling_step = step
            sigma = sigmas[step].expand(x.shape[0])
            x = self.model_wrap_cfg(x, sigma, **self.sampler_extra_args)
        return x

    def apply_refiner(self, p, completed_ratio):
        """Like ``sd_samplers_common.apply_refiner``: switch checkpoints part-way, once."""
        refiner = getattr(p, "refiner_model", None)
        if refiner is None or shared.sd_model is refiner or completed_ratio < p.refiner_switch_at:
            return
        p.extra_generation_params["Refiner switch at"] = p.refiner_switch_at
        shared.sd_model = refiner
        p.setup_conds()
        self.model_wrap_cfg.update_inner_model()


class StableDiffusionProcessing:
    cached_c = [None, None]
    cached_uc = [None, None]

    def __init__(
        self,
        prompt="",
        negative_prompt="",
        batch_size=1,
        n_iter=1,
        steps=4,
        cfg_scale=7.0,
        width=64,
        height=64,
        seed=1,
        s_min_uncond=0.0,
        script_args=None,
        scripts=None,
        sampler_name="Euler",
        refiner_model=None,
        refiner_switch_at=None,
    ):
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.steps = steps
        self.cfg_scale = cfg_scale
        self.width = width
        self.height = height
        self.seed = seed
        self.s_min_uncond = s_min_uncond
        self.script_args = list(script_args or [])
        self.scripts = scripts
        self.sampler_name = sampler_name
        self.refiner_model = refiner_model  # A1111 names a checkpoint; the fake takes the model
        self.refiner_switch_at = refiner_switch_at
        self.extra_generation_params = {}
        self.comments = {}
        self.is_hr_pass = False
        self.iteration = 0
        self.c = None
        self.uc = None
        self.unet_calls = []

    def comment(self, text):
        self.comments[text] = 1

    def setup_prompts(self):
        prompts = (
            self.prompt
            if isinstance(self.prompt, list)
            else [self.prompt] * (self.batch_size * self.n_iter)
        )
        self.all_prompts = prompts
        self.all_negative_prompts = [self.negative_prompt] * len(prompts)

    def get_conds_with_caching(
        self, function, required_prompts, steps, caches, extra_network_data=None, hires_steps=None
    ):
        key = (tuple(required_prompts), steps, hires_steps, id(shared.sd_model))
        for cache in caches:
            if cache[0] == key:
                return cache[1]
        caches[0][1] = function(shared.sd_model, required_prompts, steps, hires_steps, False)
        caches[0][0] = key
        return caches[0][1]

    def setup_conds(self):
        prompts = prompt_parser.SdConditioning(self.prompts, width=self.width, height=self.height)
        negative = prompt_parser.SdConditioning(
            self.negative_prompts, is_negative_prompt=True, width=self.width, height=self.height
        )
        self.uc = self.get_conds_with_caching(
            prompt_parser.get_learned_conditioning, negative, self.steps, [self.cached_uc]
        )
        self.c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning, prompts, self.steps, [self.cached_c]
        )

    def get_conds(self):
        return self.c, self.uc

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        raise NotImplementedError()

    def latents(self):
        return torch.zeros(len(self.prompts), 4, self.height // 8, self.width // 8)


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    cached_hr_c = [None, None]
    cached_hr_uc = [None, None]

    def __init__(
        self, enable_hr=False, hr_prompt="", hr_negative_prompt="", hr_second_pass_steps=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.enable_hr = enable_hr
        self.hr_prompt = hr_prompt
        self.hr_negative_prompt = hr_negative_prompt
        self.hr_second_pass_steps = hr_second_pass_steps
        self.hr_c = None
        self.hr_uc = None

    def setup_prompts(self):
        super().setup_prompts()
        count = len(self.all_prompts)
        self.all_hr_prompts = [self.hr_prompt] * count if self.hr_prompt else list(self.all_prompts)
        self.all_hr_negative_prompts = [self.hr_negative_prompt or self.negative_prompt] * count

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        samples = FakeSampler().sample(
            self, self.latents(), conditioning, unconditional_conditioning, self.steps
        )
        if not self.enable_hr:
            return samples
        self.is_hr_pass = True
        self.calculate_hr_conds()
        if self.scripts is not None:
            self.scripts.before_hr(self)
        samples = FakeSampler().sample(
            self, samples, self.hr_c, self.hr_uc, self.hr_second_pass_steps or self.steps
        )
        self.is_hr_pass = False
        return samples

    def calculate_hr_conds(self):
        if self.hr_c is not None:
            return
        prompts = prompt_parser.SdConditioning(self.hr_prompts)
        negative = prompt_parser.SdConditioning(self.hr_negative_prompts, is_negative_prompt=True)
        steps = self.hr_second_pass_steps or self.steps
        self.hr_uc = self.get_conds_with_caching(
            prompt_parser.get_learned_conditioning,
            negative,
            steps,
            [self.cached_hr_uc, self.cached_uc],
        )
        self.hr_c = self.get_conds_with_caching(
            prompt_parser.get_multicond_learned_conditioning,
            prompts,
            steps,
            [self.cached_hr_c, self.cached_c],
        )

    def setup_conds(self):
        super().setup_conds()
        self.hr_c = None
        self.hr_uc = None

    def get_conds(self):
        return (self.hr_c, self.hr_uc) if self.is_hr_pass else super().get_conds()


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    def __init__(self, init_images=None, denoising_strength=0.75, image_mask=None, **kwargs):
        super().__init__(**kwargs)
        self.init_images = init_images
        self.denoising_strength = denoising_strength
        self.image_mask = image_mask

    def sample(
        self, conditioning, unconditional_conditioning, seeds, subseeds, subseed_strength, prompts
    ):
        steps = max(1, int(self.steps * self.denoising_strength))
        return FakeSampler().sample(
            self, self.latents(), conditioning, unconditional_conditioning, steps
        )


class Processed:
    def __init__(self, p, images_list, infotexts):
        self.images = images_list
        self.infotexts = infotexts
        self.comments = "".join(f"{comment}\n" for comment in p.comments)


def create_infotext(p, index):
    params = {
        "Steps": p.steps,
        "Seed": p.seed + index,
        "Size": f"{p.width}x{p.height}",
        **p.extra_generation_params,
    }
    negative = (
        f"\nNegative prompt: {p.all_negative_prompts[index]}"
        if p.all_negative_prompts[index]
        else ""
    )
    return f"{p.all_prompts[index]}{negative}\n{infotext_utils.parameters_line(params)}"


def process_images(p):
    """Like A1111's UI or API call of it: the job state begins, and ends however it goes."""
    shared.state.begin()
    try:
        return _process_images(p)
    finally:
        shared.state.end()


def _process_images(p):
    p.setup_prompts()
    if p.scripts is not None:
        p.scripts.process(p)
    images, infotexts = [], []
    for n in range(p.n_iter):
        p.iteration = n
        start, stop = n * p.batch_size, (n + 1) * p.batch_size
        p.prompts = p.all_prompts[start:stop]
        p.negative_prompts = p.all_negative_prompts[start:stop]
        if isinstance(p, StableDiffusionProcessingTxt2Img) and p.enable_hr:
            p.hr_prompts = p.all_hr_prompts[start:stop]
            p.hr_negative_prompts = p.all_hr_negative_prompts[start:stop]
        p.setup_conds()
        samples = p.sample(
            conditioning=p.c,
            unconditional_conditioning=p.uc,
            seeds=[p.seed + i for i in range(start, stop)],
            subseeds=[],
            subseed_strength=0,
            prompts=p.prompts,
        )
        if p.scripts is not None:
            p.scripts.postprocess_batch(p, samples, batch_number=n)
        images += list(samples)
        infotexts += [create_infotext(p, i) for i in range(start, stop)]
    processed = Processed(p, images, infotexts)
    if p.scripts is not None:
        p.scripts.postprocess(p, processed)
    return processed
