"""First-image time: a job's guides from a saved reference against from the same images.

    python benchmarks/bench_reference.py [--tower vit-l|tiny] [--towers-dir DIR] [--repeat N]

What a job does before its first step, SD 1.x on the CPU in float32 (CUDA rows too when a GPU
is present): from images, load the CLIP ViT-L/14 tower from disk, encode the images and build
the prompt's guide; from a reference, read the reference file (safetensors) and build the same
guide. The tower is random, of the real size (``vit-l``, 303M parameters, saved once under
``--towers-dir`` by ``bench_memory.build_tower``: nothing is downloaded); ``tiny`` is the
tests' tiny tower. Rows: 1, 4 and 10 images (a folder of style pictures); times are the
median of ``--repeat`` cold starts in seconds (the files are in the OS cache after the first),
with "encode only" the images' time with the tower already loaded, and the reference file's
size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from bench_memory import build_tower  # noqa: E402

from flexdiffuse.encoder import ImageEncoder, TokenCache  # noqa: E402
from flexdiffuse.families import SD1  # noqa: E402
from flexdiffuse.guides import EncodedPart, ImageTokens, prompt_guide  # noqa: E402
from flexdiffuse.params import JobParams  # noqa: E402
from flexdiffuse.references import (  # noqa: E402
    Reference,
    ReferenceImage,
    TowerIdentity,
    load_reference,
    reference_images,
    save_reference,
    thumbnail,
)
from tests.webui.conftest import gradient  # noqa: E402

PART = SD1.parts[0]
COUNTS = (1, 4, 10)


def seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_row(tower: Path, count: int, device: torch.device, folder: Path, repeat: int) -> str:
    """One row: ``count`` images, the guide from images (cold tower) and from a reference."""
    images = [gradient(512, 512, seed=seed) for seed in range(count)]
    params = JobParams()

    def guide(tokens: list[ImageTokens]) -> None:
        prompt_guide(params, [EncodedPart(PART, tokens)], None)

    def encode(encoder: ImageEncoder) -> list[torch.Tensor]:
        encoder.cache = TokenCache()  # encode every time, as for new images
        return [encoder(image) for image in images]

    def from_images() -> None:
        encoder = ImageEncoder.from_pretrained(tower, device, torch.float32)
        guide([ImageTokens(tokens) for tokens in encode(encoder)])

    encoder = ImageEncoder.from_pretrained(tower, device, torch.float32)
    tokens = encode(encoder)
    path = folder / f"bench {count}.safetensors"
    saved = tuple(ReferenceImage(str(n), {PART.tower.name: t}) for n, t in enumerate(tokens))
    identity = (TowerIdentity.of(PART.tower, str(tower)),)
    save_reference(Reference(path.stem, saved, identity, thumbnail(images)), path)

    def from_reference() -> None:
        reference = load_reference(path)
        made = reference_images(reference, PART.tower, 1.0)
        guide([ImageTokens(t.tokens.to(device), t.weight, t.recipe, t.keep) for t in made])

    cold = seconds(from_images, repeat)
    warm = seconds(lambda: encode(encoder), repeat)
    read = seconds(from_reference, repeat)
    kib = path.stat().st_size / 1024
    cells = [device.type, str(count), f"{cold:.3f}", f"{warm:.3f}", f"{read:.4f}"]
    cells += [f"{cold / read:.0f}x", f"{kib:.0f}"]
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tower", choices=("vit-l", "tiny"), default="vit-l")
    parser.add_argument("--towers-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tower = build_tower(args.tower, args.towers_dir / f"flexdiffuse-bench-{args.tower}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, tower {args.tower}")
    print(
        "| device | images | from images s (load + encode + guide) | encode only s "
        "| from reference s (read + guide) | speed-up | reference KiB |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for device in devices:
            for count in COUNTS:
                print(bench_row(tower, count, device, Path(folder), args.repeat), flush=True)


if __name__ == "__main__":
    main()
