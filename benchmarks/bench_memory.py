"""Process memory of the vision towers across webui jobs: keep-loaded, spellings, settings.

    python benchmarks/bench_memory.py [--tower vit-l|tiny] [--towers-dir DIR]

Real txt2img jobs run through FlexDiffuse's glue in the test fake webui (``tests/fakehost``)
on the CPU, float32. The tower is random, of the real size (``vit-l``: CLIP ViT-L/14 vision
tower and projection, 303M parameters, built from a transformers config: nothing is
downloaded), saved once under ``--towers-dir`` by a child process, so building it costs this
process nothing. Each step reports the towers in memory, the process's resident memory after
it (RSS) and its peak during it (VmHWM, reset before the step), in MiB, and its seconds.
Linux only (``/proc/self``).
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "fakehost")]

TOWERS = {
    "vit-l": dict(
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        image_size=224,
        patch_size=14,
        projection_dim=768,
        hidden_act="quick_gelu",
    ),
}


def build_tower(name: str, folder: Path) -> Path:
    """Save a random tower ``name`` into ``folder`` (once; reused when already there)."""
    if (folder / "model.safetensors").is_file():
        return folder
    if name == "tiny":
        from tests.conftest import save_tiny_clip

        return save_tiny_clip(folder, projection_dim=768)
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**TOWERS[name]))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def memory_mib() -> tuple[float, float]:
    """(resident, peak resident) memory of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        return False
    return True


def run(tower: Path, say: Callable[[str], None] = print) -> list[list[str]]:
    """The steps' rows: step, towers loaded, RSS MiB, peak MiB, seconds."""
    import pytest
    from modules import script_callbacks, shared

    from flexdiffuse.webui import hosts, script, settings
    from flexdiffuse.webui.families import VIT_L

    try:
        from flexdiffuse.webui.vision_towers import VisionTowers
    except ImportError:  # an older checkout (to measure it too)
        from flexdiffuse.webui.models import VisionTowers
    from flexdiffuse.webui.runtime import Runtime
    from tests.webui import conftest as harness

    patch = pytest.MonkeyPatch()
    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    if hasattr(harness, "move_webui"):
        harness.move_webui(workdir / "webui", patch)
    else:  # an older checkout (to measure it too): only the models folder moves
        from modules import paths

        patch.setattr(paths, "models_path", str(workdir / "webui" / "models"))
    harness.reset_host()
    patch.setattr(script, "RUNTIME", Runtime(hosts.detect(), VisionTowers()))
    webui = harness.Webui(harness.load_extension_script(), {})
    script_callbacks.ui_settings_callback()
    copy = workdir / "copy-of-the-tower"
    link = workdir / "link-to-the-tower"
    link.symlink_to(tower, target_is_directory=True)
    patch.chdir(tower.parent)
    seeds = iter(range(100))
    last = [0]

    def job(seen: bool = False) -> None:
        """A job with a new image, or with the last one (its tokens are kept)."""
        if not seen:
            last[0] = next(seeds)
        webui.txt2img(webui.args(image=harness.gradient(seed=last[0])), prompt="a", steps=1)

    def copy_tower() -> None:
        import shutil

        shutil.copytree(tower, copy)
        shared.opts.set(VIT_L.setting, str(copy))

    steps: list[tuple[str, Callable[[], None]]] = [
        ("webui started, no tower loaded", lambda: None),
        ("job, keep loaded on (the tower loads)", job),
        ("job, same image: tokens reused", lambda: job(seen=True)),
        (
            "setting spelled `./name/`, new image",
            lambda: (shared.opts.set(VIT_L.setting, f"./{tower.name}/"), job()),
        ),
        (
            "setting is a symlink to it, new image",
            lambda: (shared.opts.set(VIT_L.setting, str(link)), job()),
        ),
        ("setting changed to a copy of the tower (applied)", copy_tower),
        ("job with the copy (it loads)", job),
        (
            "keep loaded off, new image",
            lambda: (shared.opts.set(settings.KEEP_LOADED, False), job()),
        ),
        ("keep loaded off, same image", lambda: job(seen=True)),
    ]
    shared.opts.data[VIT_L.setting] = str(tower)
    rows = []
    try:
        for label, action in steps:
            gc.collect()
            peak_known = reset_peak()
            start = time.perf_counter()
            action()
            seconds = time.perf_counter() - start
            gc.collect()
            rss, peak = memory_mib()
            loaded = len(script.RUNTIME.towers.loaded())
            row = [label, str(loaded), f"{rss:.0f}", f"{peak:.0f}" if peak_known else "n/a"]
            rows.append([*row, f"{seconds:.1f}"])
            say("| " + " | ".join(rows[-1]) + " |")
    finally:
        patch.undo()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tower", choices=["vit-l", "tiny"], default="vit-l")
    parser.add_argument("--towers-dir", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = args.towers_dir / f"flexdiffuse-bench-{args.tower}"
    if args.build:
        build_tower(args.tower, folder)
        return
    if not (folder / "model.safetensors").is_file():
        command = [sys.executable, __file__, "--build", "--tower", args.tower]
        subprocess.run([*command, "--towers-dir", str(args.towers_dir)], check=True)
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, tower {folder}")
    print("| step | towers loaded | RSS MiB | peak MiB | s |")
    print("|---|---|---|---|---|")
    run(folder)


if __name__ == "__main__":
    main()
