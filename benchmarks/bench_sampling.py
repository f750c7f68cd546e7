"""What FlexDiffuse adds to a webui job: once per batch, and at every sampling step.

    python benchmarks/bench_sampling.py [--repeat N]

A1111's conditioning structures come from the fake host of the tests (``tests/fakehost``),
with a fake text encoder of the real widths, 257 random image tokens per tower and default
parameters. Columns:

- *prepare ms*: guiding every scheduled conditioning of a batch, once, before sampling;
- *step µs*: FlexDiffuse's ``on_cfg_denoiser`` work at one step (the host adapter reading
  the step, the job finding the guided batch);
- *rebuild µs*: A1111's own per-step batch rebuild, for scale;
- *guide per step ms*: what guiding at every step instead would cost.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path
from types import SimpleNamespace

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fakehost"), str(ROOT / "benchmarks")]

from bench_guide import timed  # noqa: E402
from modules import prompt_parser, shared  # noqa: E402
from sdmodel import FakeSdModel  # noqa: E402

from flexdiffuse import GuidanceParams, JobParams  # noqa: E402
from flexdiffuse.guidance import ConditioningGuide, PartGuide  # noqa: E402
from flexdiffuse.webui.args import ScriptArgs  # noqa: E402
from flexdiffuse.webui.hosts.a1111 import A1111Host  # noqa: E402
from flexdiffuse.webui.job import GuidedJob, JobGuides  # noqa: E402

STEPS = 20
FAMILIES = {"SD 1.x": ("sd1", (0, 768)), "SDXL": ("sdxl", (0, 768), (768, 1280))}


def bench_row(family: str, batch: int, chunks: int, edit: bool, repeat: int) -> str:
    flags, *parts = FAMILIES[family]
    model = FakeSdModel(flags)
    words = " ".join(f"word{i}" for i in range(75 * chunks - 10))
    prompt = f"a [cat:dog:0.5] {words}" if edit else f"a cat {words}"
    prompts = [f"{prompt} {i}" for i in range(batch)]
    cond = prompt_parser.get_multicond_learned_conditioning(model, prompts, STEPS)
    generator = torch.Generator().manual_seed(0)
    towers = tuple(
        PartGuide(start, torch.randn(257, width, generator=generator)) for start, width in parts
    )
    guidance = ConditioningGuide(GuidanceParams(), towers)
    shared.sd_model = model
    host = A1111Host()
    job = GuidedJob(
        ScriptArgs(True, {}, JobParams()), lambda width: JobGuides(guidance, None), host
    )
    p = SimpleNamespace(
        c=cond, uc=None, prompts=prompts, is_hr_pass=False, sample=None, extra_generation_params={}
    )
    surface = host.attach(p, job)
    extra_args = {"cond": cond, "uncond": None}
    denoiser = SimpleNamespace(
        p=p, step=0, total_steps=STEPS, sampler=SimpleNamespace(sampler_extra_args=extra_args)
    )
    _, text_cond = prompt_parser.reconstruct_multicond_batch(cond, 0)
    params = SimpleNamespace(denoiser=denoiser, text_cond=text_cond, text_uncond=None)

    def prepare():
        job.built = None
        job.before_sampling(surface)

    def step():
        params.text_cond = text_cond
        host.on_step(params)

    def rebuild():
        prompt_parser.reconstruct_multicond_batch(cond, denoiser.step)

    crossattn = text_cond["crossattn"] if isinstance(text_cond, dict) else text_cond
    prepare_ms = timed(prepare, torch.device("cpu"), repeat)
    step_us = timed(step, torch.device("cpu"), repeat * 50) * 1000
    rebuild_us = timed(rebuild, torch.device("cpu"), repeat * 50) * 1000
    per_step_ms = timed(lambda: guidance.apply(crossattn), torch.device("cpu"), repeat)
    cells = [family, str(batch), str(chunks), "yes" if edit else "no"]
    cells += [f"{prepare_ms:.1f}", f"{step_us:.1f}", f"{rebuild_us:.1f}", f"{per_step_ms:.1f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, {STEPS} steps")
    print(
        "| model | batch | chunks | prompt editing | prepare ms | step µs | rebuild µs "
        "| guide per step ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for config in itertools.product(FAMILIES, (1, 4), (1, 3), (False, True)):
        print(bench_row(*config, args.repeat), flush=True)


if __name__ == "__main__":
    main()
