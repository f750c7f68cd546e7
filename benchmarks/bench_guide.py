"""guide() against the loop-by-loop spec oracle at SD 1.x shapes; prints a Markdown table.

    python benchmarks/bench_guide.py [--repeat N] [--no-oracle] [--min]

SD 1.x shapes: text width 768, 257 image tokens (ViT-L/14 at 224 px). Rows: batch 1, 4, 8 prompts;
1 and 3 chunks (prompts up to 75 and 225 tokens); reuse on/off; with and without a concepts
prompt. Times are the median of ``--repeat`` runs (the oracle runs once: it is slow), or with
``--min`` their minimum, steadier on a machine other work shares. CUDA rows are added when a
GPU is present.

The oracle is ``tests/oracle.py`` run entirely as loops (``pairwise=True``: alignments pair by
pair too). Tests run it with the engine's alignment matrix instead; that variant's time is the
"oracle steps ms" column, to show where the speed-up comes from.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flexdiffuse import GuidanceParams, guide
from tests.oracle import oracle_guide

WIDTH, IMAGE_TOKENS = 768, 257


def timed(fn, device: torch.device, repeat: int, stat=statistics.median) -> float:
    """Median (or ``stat``) wall time of ``fn`` in ms, synchronising CUDA around each run."""
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return stat(times)


def bench_row(device, batch, chunks, reuse, with_concepts, args, generator) -> str:
    """One table row: time guide (and the oracle, on CPU) for one configuration."""
    text = torch.randn(batch, 77 * chunks, WIDTH, generator=generator)
    image = torch.randn(IMAGE_TOKENS, WIDTH, generator=generator)
    concepts = torch.randn(77, WIDTH, generator=generator) if with_concepts else None
    params = GuidanceParams(reuse=reuse)
    on_device = [t.to(device) if t is not None else None for t in (text, image, concepts)]

    def run_guide():
        return guide(on_device[0], on_device[1], params, on_device[2])

    run_guide()  # warm-up
    fast = timed(run_guide, device, args.repeat, min if args.min else statistics.median)
    cells = [f"{fast:.2f}", "", "", ""]
    if not args.no_oracle and device.type == "cpu":
        loops = timed(lambda: oracle_guide(text, image, params, concepts, pairwise=True), device, 1)
        steps = timed(lambda: oracle_guide(text, image, params, concepts), device, 1)
        cells[1:] = [f"{loops:.0f}", f"{steps:.0f}", f"{loops / fast:.0f}x"]
    flags = ["on" if reuse else "off", "on" if with_concepts else "off"]
    return "| " + " | ".join([device.type, str(batch), str(chunks), *flags, *cells]) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--no-oracle", action="store_true", help="skip the slow oracle columns")
    parser.add_argument("--min", action="store_true", help="the fastest run, not the median")
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(
        "| device | batch | chunks | reuse | concepts | guide ms | oracle ms "
        "| oracle steps ms | speed-up vs oracle |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    generator = torch.Generator().manual_seed(0)
    for config in itertools.product(devices, (1, 4, 8), (1, 3), (True, False), (False, True)):
        print(bench_row(*config, args, generator), flush=True)


if __name__ == "__main__":
    main()
