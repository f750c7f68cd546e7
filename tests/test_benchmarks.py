"""Each benchmark still runs (one small row each): CI never runs them in full."""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # bench_sampling and bench_preview import bench_guide's timer
    spec.loader.exec_module(module)
    return module


def test_bench_guide_row():
    bench = load("bench_guide")
    args = argparse.Namespace(repeat=1, no_oracle=True, min=True)
    row = bench.bench_row(torch.device("cpu"), 1, 1, False, True, args, torch.Generator())
    assert row.startswith("| cpu | 1 | 1 | off | on |")


def test_bench_sampling_row():
    assert load("bench_sampling").bench_row("SDXL", 1, 1, True, 1).startswith("| SDXL | 1 | 1 |")


def test_bench_preview_row():
    assert load("bench_preview").bench_row(2, True, 1).startswith("| 2 | on |")


@pytest.mark.slow
def test_bench_memory_rows(tmp_path):
    bench = load("bench_memory")
    tower = bench.build_tower("tiny", tmp_path / "tiny")
    rows = bench.run(tower, say=lambda row: None)
    loaded = [row[1] for row in rows]
    # One copy whatever the spelling; a changed setting lets the old tower go when applied;
    # keep-loaded off unloads after encoding.
    assert loaded == ["0", "1", "1", "1", "1", "0", "1", "0", "0"]


def test_bench_scan_row(tmp_path):
    from safetensors.torch import save_file

    from tests.test_checkpoints import state_of, tiny_tower

    state = state_of(tiny_tower(projection_dim=48))
    save_file(state, str(tmp_path / "tower.safetensors"))
    torch.save(state, tmp_path / "tower.pth")
    bench = load("bench_scan")
    ms, _peak, shape = bench.measure(tmp_path / "tower.safetensors", 1)
    assert ms > 0
    assert shape.layers == 2
    assert bench.measure(tmp_path / "tower.pth", 1)[2] is None  # a pickle: not opened
    assert bench.measure_scan(tmp_path, 1)[2] == (0, 1)  # 48 wide, not ViT-L; the pickle listed


def test_bench_ipadapter_row_from_n_and_2n_step_jobs():
    bench = load("bench_ipadapter")
    plain = [
        bench.Job("plain", 4, 10.0, 8.0, 0, 1.0, 2.0),
        bench.Job("plain", 8, 14.0, 12.0, 0, 1.0, 2.0),
    ]
    both = [
        bench.Job("both", 4, 12.0, 9.0, 0, 1.0, 2.4),
        bench.Job("both", 8, 18.0, 14.0, 0, 1.0, 2.4),
    ]
    row = bench.row("both", [both], 4, [plain], 1.0)
    assert row == (
        "| both | 2.40 (1.20 / 1.20) | 1.50 / 1.50 | 1.25 | 6.0 | 0 | 1.50 / 1.50 | 1.50 / 1.50 |"
    )


def test_the_samplers_rate_is_read_from_its_progress_bar(tmp_path):
    bench = load("bench_ipadapter")
    log = tmp_path / "server.log"
    log.write_text("old 2/2 [00:09<00:00,  9.00s/it]\n")
    offset = log.stat().st_size
    with open(log, "a") as file:
        file.write(" 25%| 1/4 [00:04<00:14,  4.95s/it]100%| 4/4 [00:19<00:00,  4.80s/it]\n")
    assert bench.sampler_rate(log, offset) == 4.80
    assert math.isnan(bench.sampler_rate(log, log.stat().st_size))  # nothing logged since


def test_the_samplers_rate_skips_a_webuis_total_progress_bar(tmp_path):
    bench = load("bench_ipadapter")
    log = tmp_path / "server.log"
    log.write_text(
        "100%|###| 3/3 [00:07<00:00,  2.42s/it]\r"
        "Total progress: 100%|###| 6/6 [00:24<00:00,  4.10s/it]\x1b[A\n"
    )
    assert bench.sampler_rate(log, 0) == 2.42


def test_bench_reference_row(tmp_path):
    from tests.conftest import save_tiny_clip

    tower = save_tiny_clip(tmp_path / "tower", projection_dim=768)  # ViT-L's token width
    row = load("bench_reference").bench_row(tower, 2, torch.device("cpu"), tmp_path, 1)
    assert row.startswith("| cpu | 2 |")
