"""What telling a tower file apart costs: time and memory of read_tower_shape on a real-size file.

The Settings dropdowns and the search for a fitting file look at every weights file of the
tower folders; a ViT-L file is 1.2 GB, so a safetensors file must cost its header, never the
weights, and a pickle (``.pth``) nothing but its name: it is listed, never opened. Builds a
ViT-L-size tower of zeros once (with this checkout's code), as ``.safetensors`` and as a
zip-format ``.pth``, in ``--towers-dir``, then times
:func:`~flexdiffuse.towers.read_tower_shape` on each, and the whole scan of their folder
(:func:`~flexdiffuse.towers.find_tower_files` and :func:`~flexdiffuse.towers.find_pickles`),
with the shape cache cleared, and reports the process's peak resident memory above what it
held before.

    python benchmarks/bench_scan.py [--repeat 5] [--towers-dir /tmp]

Run it with ``PYTHONPATH`` set to another checkout to measure that one.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# This checkout's package, unless PYTHONPATH names another one to measure.
sys.path.append(str(Path(__file__).resolve().parents[1]))


def build(folder: Path) -> tuple[Path, Path]:
    """A ViT-L/14-size tower of zeros as safetensors and as a torch file (once)."""
    safetensors_file, torch_file = folder / "vit-l.safetensors", folder / "vit-l.pth"
    if safetensors_file.is_file() and torch_file.is_file():
        return safetensors_file, torch_file
    import torch
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig

    from flexdiffuse.checkpoints import expected_shapes
    from flexdiffuse.known_towers import VIT_L

    config = CLIPVisionConfig(
        hidden_size=VIT_L.hidden_width,
        intermediate_size=4 * VIT_L.hidden_width,
        num_hidden_layers=VIT_L.layers,
        num_attention_heads=VIT_L.heads,
        patch_size=14,
        image_size=224,
        projection_dim=VIT_L.token_width,
    )
    state = {name: torch.zeros(shape) for name, shape in expected_shapes(config).items()}
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(safetensors_file))
    torch.save(state, torch_file)
    return safetensors_file, torch_file


def status_mib(field: str) -> float:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``: the peak) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def clear_caches() -> None:
    from flexdiffuse import towers

    # The caches of this checkout and of earlier ones (PYTHONPATH), whichever exist.
    for name in ("_cached_header_shapes", "_cached_torch_file_shapes", "_cached_pickle_shapes"):
        cached = getattr(towers, name, None)
        if cached is not None:
            cached.cache_clear()


def measure(file: Path, repeat: int) -> tuple[float, float, object]:
    """(min ms, peak MiB above the RSS before, the shape read) of reading ``file``."""
    from flexdiffuse.towers import read_tower_shape

    return timed(lambda: read_tower_shape(file), repeat)


def measure_scan(folder: Path, repeat: int) -> tuple[float, float, object]:
    """(min ms, peak MiB, (towers found, pickles listed)) of scanning ``folder`` for ViT-L."""
    from flexdiffuse import towers
    from flexdiffuse.known_towers import VIT_L

    def scan() -> tuple[int, int]:
        found = towers.find_tower_files([folder], VIT_L.token_width)
        listed = getattr(towers, "find_pickles", lambda folders: [])([folder])
        return len(found), len(listed)

    return timed(scan, repeat)


def timed(call: Callable[[], object], repeat: int) -> tuple[float, float, object]:
    """(min ms, peak MiB above the RSS before, the result) of ``call``, caches cleared."""
    call()  # imports what reading needs, outside the measurement
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_mib("VmRSS")
    best, result = float("inf"), None
    for _ in range(repeat):
        clear_caches()
        start = time.perf_counter()
        result = call()
        best = min(best, time.perf_counter() - start)
    return best * 1000, status_mib("VmHWM") - before, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--towers-dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    files = build(args.towers_dir / "flexdiffuse-bench-scan")
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print("| read | size GB | ms (min) | peak RSS above before, MiB | result |")
    print("|---|---|---|---|---|")
    for file in files:
        ms, mib, shape = measure(file, args.repeat)
        size = file.stat().st_size / 1e9
        print(f"| `{file.suffix}` | {size:.2f} | {ms:.2f} | {mib:.0f} | {shape} |")
    ms, mib, (towers, pickles) = measure_scan(files[0].parent, args.repeat)
    size = sum(file.stat().st_size for file in files) / 1e9
    result = f"{towers} tower found, {pickles} pickle listed"
    print(f"| the folder (both) | {size:.2f} | {ms:.2f} | {mib:.0f} | {result} |")


if __name__ == "__main__":
    main()
