"""The mapping preview's own cost once the image is encoded: explain + render, per tower.

    python benchmarks/bench_preview.py [--repeat N]

SD 1.x shapes (width 768, 257 image tokens per image at 224 px), one prompt chunk, default
parameters, with and without a concepts prompt; 1, 2 and 4 guidance images. The text encoding
and the vision tower run in the webui and are not included (see RESULTS.md for live timings).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fakehost"), str(ROOT / "benchmarks")]

from bench_guide import timed  # noqa: E402

from flexdiffuse import GuidanceParams  # noqa: E402
from flexdiffuse.images import GuidanceImage  # noqa: E402
from flexdiffuse.preview import explain  # noqa: E402
from flexdiffuse.webui.preview import render_mapping  # noqa: E402

WIDTH, TOKENS = 768, 257


def bench_row(images: int, concepts: bool, repeat: int) -> str:
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(77, WIDTH, generator=generator)
    tokens = torch.randn(TOKENS * images, WIDTH, generator=generator)
    concept = torch.randn(77, WIDTH, generator=generator) if concepts else None
    pictures = [
        GuidanceImage.from_pil(Image.new("RGB", (512, 512), (40 * i, 90, 160)))
        for i in range(images)
    ]
    labels = [["<start>", *[f"word{i}" for i in range(1, 20)], "<end>", *[""] * 56]]
    params = GuidanceParams()
    cpu = torch.device("cpu")
    reports = explain(text, tokens, params, concept)
    explain_ms = timed(lambda: explain(text, tokens, params, concept), cpu, repeat)
    render_ms = timed(lambda: render_mapping(reports, labels, pictures, len(tokens)), cpu, repeat)
    cells = [str(images), "on" if concepts else "off", f"{explain_ms:.1f}", f"{render_ms:.1f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("| images | concepts | explain ms | render ms |")
    print("|---|---|---|---|")
    for images, concepts in itertools.product((1, 2, 4), (False, True)):
        print(bench_row(images, concepts, args.repeat), flush=True)


if __name__ == "__main__":
    main()
