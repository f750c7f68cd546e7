"""FlexDiffuse beside IP-Adapter in one live ComfyUI: per-step cost, first image, memory.

    .venv/bin/python benchmarks/bench_ipadapter.py [--comfyui-dir DIR] [--part cold warm]

From a fresh clone with the host kit beside it (``../shared/hosts``) that one command builds
the live ComfyUI in DIR if needed (``live-comfyui build``, default: the kit's folder),
unpacks ComfyUI_IPAdapter_plus (a GPL test component, never imported by FlexDiffuse) into its
``custom_nodes/``, builds and links random IP-Adapter SD 1.5 and ViT-H/14 files
(``tests/live_comfy/random_ipadapter.py``, cached in ``--models-dir``), starts the server with
this checkout as its node pack, drives it over HTTP and stops it. Run it alone on the machine
(it times a shared CPU) and under your lock for the live servers.

The job is SD 1.5 at 512x512 (euler, CFG 7) in four forms (tests/live_comfy/ipadapter_graphs.py):
plain, FlexDiffuse, IP-Adapter (``IPAdapterAdvanced``, weight 1), both. Times are the server's
own (its ``execution_start`` to ``execution_success`` timestamps), with the server process's CPU
seconds and major page faults over each job (``/proc``), so host contention and memory pressure
show apart from work.

- ``warm``: one server. Plain alone first (N and 2N steps, ``--repeat`` times: "plain, nothing
  else loaded"); then each method once to load its towers; then the four in rotation, N and 2N
  steps each, ``--repeat`` rounds, with the issue's control (plain sampling whose towers encode
  the image into ``unCLIPConditioning`` at strength 0, a no-op on SD 1.5). Every model stays
  loaded after its first use (ComfyUI's cache), so in the rotation all run with the same
  models in memory. The per-step cost is
  (t(2N) - t(N)) / N per round; its ratio to plain's of the same round ("same towers loaded")
  and to the first phase's plain median ("nothing else loaded") is given as min and median over
  rounds, with the fixed cost (t(N) - N x per-step).
- ``cold``: for each method a fresh server: its first image (2N steps: checkpoint, towers and
  adapter loading included), then a new image (another seed, everything loaded); the server's
  peak and current resident memory (VmHWM, VmRSS) after them, and the model files it read
  beyond plain's.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live_comfy.client import ComfyClient  # noqa: E402
from tests.live_comfy.ipadapter_graphs import (  # noqa: E402
    METHODS,
    TOWERS_OF,
    complete,
    method_graph,
    set_inputs,
    with_towers_loaded,
)
from tests.live_comfy.make_examples import (  # noqa: E402
    IPADAPTER_SD15,
    SD15,
    VIT_H,
    VIT_L,
    with_ipadapter,
)
from tests.live_comfy.random_ipadapter import VARIANTS, VIT_H_FILE  # noqa: E402

KIT = ROOT.parent / "shared" / "hosts"
PACK = "ipadapter-plus-9d076a3"
HOST_MODELS = {
    SD15: "rand-sd15.safetensors",
    VIT_L: "rand-clip-vit-l-14.safetensors",
    VIT_H: VIT_H_FILE,
    IPADAPTER_SD15: VARIANTS["sd15"].file,
}
ENCODE = "plain, towers run (unCLIP at 0)"
"""The issue's control: both towers encode the image into an unCLIPConditioning at strength 0,
which returns the conditioning unchanged: plain sampling with the towers loaded and used."""
MODEL_FILES = {"vit-l": ("clip_vision", VIT_L), "vit-h": ("clip_vision", VIT_H)}


# ------------------------------------------------------------------ the server


@dataclass
class Server:
    script: Path
    folder: Path
    port: int
    client: ComfyClient | None = None
    pid: int = 0

    def start(self) -> float:
        began = time.monotonic()
        done = subprocess.run(
            [
                str(self.script),
                "start",
                str(self.folder),
                "--extension",
                str(ROOT),
                "--port",
                str(self.port),
            ],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"live-comfyui start failed:\n{done.stdout}{done.stderr}")
        self.client = ComfyClient(f"http://127.0.0.1:{self.port}")
        self.pid = server_process(int((self.folder / "server.pid").read_text()))
        return time.monotonic() - began

    def graphs(self, size: int) -> dict[str, dict[str, Any]]:
        assert self.client is not None
        return graphs(self.client.get_json("/object_info"), size)

    def stop(self) -> None:
        subprocess.run([str(self.script), "stop", str(self.folder)], capture_output=True)


def server_process(leader: int) -> int:
    """The python process running ComfyUI's main.py in ``leader``'s process group."""
    for entry in [Path(f"/proc/{leader}"), *Path("/proc").iterdir()]:
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            group = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2])
        except (OSError, ValueError, IndexError):
            continue
        if any(part.endswith(b"main.py") for part in cmdline) and leader in (
            group,
            int(entry.name),
        ):
            return int(entry.name)
    raise SystemExit(f"no ComfyUI main.py in process group {leader}")


@dataclass(frozen=True)
class Counters:
    cpu: float  # user + system seconds of the whole process
    majflt: int
    rss: int  # bytes
    hwm: int  # bytes


def counters(pid: int) -> Counters:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    status = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    kib = lambda key: int(status[key].split()[0]) * 1024  # noqa: E731
    return Counters(
        (int(fields[11]) + int(fields[12])) / tick, int(fields[9]), kib("VmRSS"), kib("VmHWM")
    )


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass(frozen=True)
class Job:
    method: str
    steps: int
    wall: float  # the server's execution time
    cpu: float
    majflt: int
    load: float
    sampler: float = math.nan  # the sampler's own seconds per step (its progress bar's rate)


SAMPLER_RATE = re.compile(r"(\d+)/\1 \[[\d:]+<[\d:]+,\s*([\d.]+)(s/it|it/s)\]")
"""The closing state of a sampler's progress bar in the server log: ``4/4 [00:19<00:00,
4.80s/it]``. Its rate counts the steps alone (no encoding, no VAE), the per-step cost with no
fixed cost to subtract."""


def sampler_rate(log: Path, offset: int) -> float:
    """Seconds per step of the last sampling logged after byte ``offset`` (nan: none). A
    webui's "Total progress" bar is skipped: it spans the whole job (hires, batches)."""
    with open(log, "rb") as file:
        file.seek(offset)
        text = file.read().decode("utf-8", "replace")
    lines = re.split(r"[\r\n]", text)
    found = SAMPLER_RATE.findall("\n".join(x for x in lines if "Total progress" not in x))
    if not found:
        return math.nan
    _, rate, unit = found[-1]
    return float(rate) if unit == "s/it" else 1 / float(rate)


SEEDS = iter(range(1000, 10**6))


def run_job(server: Server, graph: dict[str, Any], method: str, steps: int) -> Job:
    graph = set_inputs(graph, "KSampler", seed=next(SEEDS), steps=steps)
    assert server.client is not None
    before = counters(server.pid)
    log = server.folder / "server.log"
    offset = log.stat().st_size
    run = server.client.run(graph)
    after = counters(server.pid)
    if run.status != "success":
        raise SystemExit(f"{method} at {steps} steps failed: {run.error}")
    stamps = {kind: data["timestamp"] for kind, data in run.entry["status"]["messages"]}
    wall = (stamps["execution_success"] - stamps["execution_start"]) / 1000
    cpu, faults = after.cpu - before.cpu, after.majflt - before.majflt
    print(  # each job as it ends, so a run cut short still shows what it measured
        f"# {method}, {steps} steps: {wall:.1f} s, CPU {cpu:.1f} s, {faults} major faults, "
        f"load {load_average():.1f}, sampler {sampler_rate(log, offset):.2f} s/step",
        file=sys.stderr,
        flush=True,
    )
    return Job(method, steps, wall, cpu, faults, load_average(), sampler_rate(log, offset))


# ------------------------------------------------------------------ setup


def setup(folder: Path, models: Path) -> None:
    """Build the host (a second build is a no-op), unpack the pack, build and link the models."""
    subprocess.run([str(KIT / "live-comfyui"), "build", str(folder)], check=True)
    tree = folder / "comfyui"
    subprocess.run(
        [str(KIT / "unpack"), PACK, str(tree / "custom_nodes" / "ComfyUI_IPAdapter_plus")],
        check=True,
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.live_comfy.random_ipadapter",
            str(models),
            "--vit-h",
            "--link",
            str(tree / "models"),
        ],
        check=True,
        cwd=ROOT,
    )


def graphs(object_info: dict[str, Any], size: int) -> dict[str, dict[str, Any]]:
    """Each job's API graph at ``size`` pixels on the host's model files."""
    both = complete(with_ipadapter(size), object_info)
    out = {method: method_graph(method, both) for method in METHODS}
    out[ENCODE] = with_towers_loaded(out["plain"], ("vit-l", "vit-h"))
    for graph in out.values():  # the example's file names, as the kit's host names them
        for node in graph.values():
            for key, value in node["inputs"].items():
                if isinstance(value, str) and value in HOST_MODELS:
                    node["inputs"][key] = HOST_MODELS[value]
    return out


# ------------------------------------------------------------------ the two parts

ROTATION = (*METHODS, ENCODE)


def per_step(jobs: list[Job], steps: int) -> tuple[float, float, float]:
    """(wall s/step, CPU s/step, fixed s) of one N / 2N pair."""
    short, long_ = sorted(jobs, key=lambda j: j.steps)
    step = (long_.wall - short.wall) / steps
    return step, (long_.cpu - short.cpu) / steps, short.wall - steps * step


def warm(server: Server, size: int, steps: int, repeat: int) -> list[str]:
    server.start()
    jobs = server.graphs(size)
    run_job(server, jobs["plain"], "plain", steps)  # the checkpoint loads
    alone = []
    for _ in range(repeat):
        alone.append([run_job(server, jobs["plain"], "plain", n) for n in (steps, 2 * steps)])
    for method in ROTATION[1:]:
        run_job(server, jobs[method], method, steps)  # its towers load
    rounds: list[dict[str, list[Job]]] = []
    for _ in range(repeat):
        rounds.append(
            {m: [run_job(server, jobs[m], m, n) for n in (steps, 2 * steps)] for m in ROTATION}
        )
    resident = counters(server.pid)
    server.stop()

    base_alone = statistics.median(per_step(pair, steps)[0] for pair in alone)
    rows = [
        f"Warm, {repeat} rounds of N={steps} and 2N={2 * steps} steps; load average "
        f"{describe([j.load for pair in alone for j in pair])} (plain alone), "
        f"{describe([j.load for r in rounds for pair in r.values() for j in pair])} (rotation); "
        f"server RSS after {resident.rss / 2**30:.2f} GiB",
        "",
        "| job | sampler s/step (vs plain, same towers: min / median) "
        "| s/step from N, 2N: min / median | CPU s/step | fixed s | major faults/job "
        "| per step vs plain, same towers loaded (min / median) "
        "| per step vs plain, nothing else loaded |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        row("plain, nothing else loaded", alone, steps, None, base_alone),
    ]
    for method in ROTATION:
        pairs = [r[method] for r in rounds]
        plain = [r["plain"] for r in rounds]
        label = method if method != "plain" else "plain, every tower loaded"
        rows.append(row(label, pairs, steps, plain, base_alone))
    return rows


def describe(values: list[float]) -> str:
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


def row(
    label: str,
    pairs: list[list[Job]],
    steps: int,
    plain: list[list[Job]] | None,
    base_alone: float,
) -> str:
    measured = [per_step(pair, steps) for pair in pairs]
    walls = [m[0] for m in measured]
    same = "-"
    if plain is not None:
        ratios = [m[0] / per_step(p, steps)[0] for m, p in zip(measured, plain, strict=True)]
        same = f"{min(ratios):.2f} / {statistics.median(ratios):.2f}"
    alone = [w / base_alone for w in walls]
    faults = statistics.median(j.majflt for pair in pairs for j in pair)
    return (
        f"| {label} | {sampler_cell(pairs, plain)} "
        f"| {min(walls):.2f} / {statistics.median(walls):.2f} "
        f"| {statistics.median(m[1] for m in measured):.2f} "
        f"| {statistics.median(m[2] for m in measured):.1f} | {faults:.0f} | {same} "
        f"| {min(alone):.2f} / {statistics.median(alone):.2f} |"
    )


def sampler_cell(pairs: list[list[Job]], plain: list[list[Job]] | None) -> str:
    """The sampler's own s/step, median over the jobs, and its ratio to the same rounds'
    plain jobs (min / median over rounds)."""
    rate = statistics.median(job.sampler for pair in pairs for job in pair)
    if plain is None:
        return f"{rate:.2f}"
    ratios = [
        statistics.median(j.sampler for j in pair) / statistics.median(j.sampler for j in base)
        for pair, base in zip(pairs, plain, strict=True)
    ]
    return f"{rate:.2f} ({min(ratios):.2f} / {statistics.median(ratios):.2f})"


def cold(server: Server, size: int, steps: int) -> list[str]:
    tree = server.folder / "comfyui" / "models"
    rows = [
        f"Cold: a fresh server per method, its first image and then a new image at {2 * steps} "
        "steps",
        "",
        "| method | start s | first image s | new image s | peak RSS GiB | RSS GiB "
        "| model files beyond plain's | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    # One unmeasured server first, so every method starts with the files in the OS page cache
    # (the first server of a run otherwise reads the checkpoint from disk and looks slowest).
    server.start()
    run_job(server, server.graphs(size)["plain"], "plain (page cache)", steps)
    server.stop()
    for method in METHODS:
        started = server.start()
        jobs = server.graphs(size)
        first = run_job(server, jobs[method], method, 2 * steps)
        again = run_job(server, jobs[method], method, 2 * steps)
        memory = counters(server.pid)
        server.stop()
        files = [MODEL_FILES[t] for t in TOWERS_OF[method]]
        if method in ("ipadapter", "both"):
            files.append(("ipadapter", IPADAPTER_SD15))
        extra = sum((tree / kind / HOST_MODELS[name]).stat().st_size for kind, name in files)
        rows.append(
            f"| {method} | {started:.0f} | {first.wall:.1f} | {again.wall:.1f} "
            f"| {memory.hwm / 2**30:.2f} | {memory.rss / 2**30:.2f} | {extra / 2**30:.2f} GiB "
            f"| {first.load:.1f} |"
        )
    return rows


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> None:
    default_dir = os.environ.get("FLEXDIFFUSE_LIVE_COMFYUI_DIR") or str(
        Path(os.environ.get("TMPDIR", "/tmp")) / "flexdiffuse-live-comfyui"
    )
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui-dir", type=Path, default=Path(default_dir))
    parser.add_argument("--models-dir", type=Path, help="default: COMFYUI_DIR/ipadapter-models")
    parser.add_argument("--part", nargs="+", default=["cold", "warm"], choices=["cold", "warm"])
    parser.add_argument("--steps", type=int, default=4, help="N (jobs run N and 2N steps)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--no-setup", action="store_true", help="the host is set up already")
    args = parser.parse_args(argv)
    models = args.models_dir or args.comfyui_dir / "ipadapter-models"
    if not args.no_setup:
        setup(args.comfyui_dir, models)
    server = Server(KIT / "live-comfyui", args.comfyui_dir, free_port())
    run_parts("bench_ipadapter", server, args, cold, warm)


def run_parts(name: str, server: Any, args: argparse.Namespace, cold: Any, warm: Any) -> None:
    """Print the header, then each part's table (``cold(server, size, steps)``,
    ``warm(server, size, steps, repeat)``), and stop the server whatever happens."""
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    print(f"{name} {commit}: SD 1.5 {args.size}x{args.size}, {os.cpu_count()} CPUs")
    try:
        for part in args.part:
            if part == "cold":
                rows = cold(server, args.size, args.steps)
            else:
                rows = warm(server, args.size, args.steps, args.repeat)
            print("\n".join(["", *rows]), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
