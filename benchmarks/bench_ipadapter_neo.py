"""FlexDiffuse beside Forge Neo's built-in IP-Adapter in one live Neo: per step, first image, RSS.

    .venv/bin/python benchmarks/bench_ipadapter_neo.py --neo-dir DIR [--part cold warm]

The Neo counterpart of ``bench_ipadapter.py`` (ComfyUI), with the same jobs, parts and table:
plain, FlexDiffuse, IP-Adapter (Neo's ControlNet unit "CLIP-ViT-H (IPAdapter)" with the random
``ip-adapter_sd15`` file, weight 1) and both, SD 1.5 over the HTTP API (euler, CFG 7), N and 2N
steps. DIR is a live Neo (``../shared/hosts/live-neo build DIR``) set up as ``tests/ci.sh``'s
``forge_ipadapter_setup`` sets it up (random IP-Adapter and ViT-H/14 files in
``models/ControlNet`` and ``models/ControlNetPreprocessor/CLIP-ViT-H-14.safetensors``); without
``--no-setup`` this script does that itself. Run it alone on the machine, under your lock for
the live servers.

Times are the API call's wall time (Neo's API has no server timestamps; the client is on the
same machine and idle), with the server process's CPU seconds and major faults (``/proc``) and
the sampler's own s/step (its progress bar's closing rate in the server log, as in ComfyUI).
The control "plain, every tower loaded" is plain sampling run in rotation after FlexDiffuse's
ViT-L and the IP-Adapter's ViT-H have loaded (Neo keeps both: FlexDiffuse's "keep loaded"
setting is on by default, and the ControlNet preprocessor caches its model).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.bench_ipadapter import (  # noqa: E402
    KIT,
    Job,
    counters,
    describe,
    free_port,
    load_average,
    per_step,
    row,
    run_parts,
    sampler_rate,
)
from tests.conftest import TESTDATA  # noqa: E402
from tests.live_comfy.random_ipadapter import VARIANTS, VIT_H_FILE  # noqa: E402

METHODS = ("plain", "flexdiffuse", "ipadapter", "both")
MODULE = "CLIP-ViT-H (IPAdapter)"
PROMPT = "a photo of a deer in a dark forest"


@dataclass
class Neo:
    folder: Path
    port: int
    pid: int = 0
    vit_l: str = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        began = time.monotonic()
        command = [str(KIT / "live-neo"), "start", str(self.folder), "--extension", str(ROOT)]
        done = subprocess.run([*command, "--port", str(self.port)], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"live-neo start failed:\n{done.stdout}{done.stderr}")
        found = re.search(r"--webui-vit-l (\S+)", done.stdout + done.stderr)
        self.vit_l = found[1] if found else ""
        self.pid = int((self.folder / "server.pid").read_text())
        return time.monotonic() - began

    def stop(self) -> None:
        subprocess.run([str(KIT / "live-neo"), "stop", str(self.folder)], capture_output=True)

    def post(self, path: str, payload: dict[str, Any]) -> Any:
        request = urllib.request.Request(
            self.url + path, json.dumps(payload).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=3600) as reply:
            return json.loads(reply.read())

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=60) as reply:
            return json.loads(reply.read())


def guidance_image() -> str:
    buffer = io.BytesIO()
    with Image.open(TESTDATA / "deer_mod.webp") as image:
        image.convert("RGB").save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def payloads(neo: Neo, size: int) -> dict[str, dict[str, Any]]:
    """Each method's txt2img payload (steps and seed set per job)."""
    image = guidance_image()
    models = neo.get("/controlnet/model_list")["model_list"]
    model = next((m for m in models if "ip-adapter_sd15" in m.lower()), None)
    if model is None or MODULE not in neo.get("/controlnet/module_list")["module_list"]:
        raise SystemExit(f"no {MODULE} preprocessor or ip-adapter_sd15 model: run the setup")
    unit = {
        "enabled": True,
        "module": MODULE,
        "model": model,
        "weight": 1.0,
        "image": image,
        "resize_mode": "Crop and Resize",
        "control_mode": "Balanced",
        "pixel_perfect": False,
    }
    base = {
        "prompt": PROMPT,
        "width": size,
        "height": size,
        "sampler_name": "Euler",
        "cfg_scale": 7,
        "override_settings": {"flexdiffuse_model_vit_l": neo.vit_l} if neo.vit_l else {},
    }
    flexdiffuse = {"flexdiffuse": {"args": [{"image": image}]}}
    ipadapter = {"ControlNet": {"args": [unit]}}
    return {
        "plain": base,
        "flexdiffuse": {**base, "alwayson_scripts": flexdiffuse},
        "ipadapter": {**base, "alwayson_scripts": ipadapter},
        "both": {**base, "alwayson_scripts": {**flexdiffuse, **ipadapter}},
    }


SEEDS = iter(range(1000, 10**6))


def run_job(neo: Neo, payload: dict[str, Any], method: str, steps: int) -> Job:
    before = counters(neo.pid)
    log = neo.folder / "server.log"
    offset = log.stat().st_size
    began = time.monotonic()
    body = neo.post("/sdapi/v1/txt2img", {**payload, "steps": steps, "seed": next(SEEDS)})
    wall = time.monotonic() - began
    after = counters(neo.pid)
    rate = sampler_rate(log, offset)
    infotext = json.loads(body["info"])["infotexts"][0]
    if method in ("flexdiffuse", "both") and "FlexDiffuse: True" not in infotext:
        raise SystemExit(f"{method}: FlexDiffuse did not guide: {infotext}")
    if method in ("ipadapter", "both") and "ControlNet 0" not in infotext:
        raise SystemExit(f"{method}: the IP-Adapter unit did not run: {infotext}")
    cpu, faults = after.cpu - before.cpu, after.majflt - before.majflt
    print(
        f"# {method}, {steps} steps: {wall:.1f} s, CPU {cpu:.1f} s, {faults} major faults, "
        f"load {load_average():.1f}, sampler {rate:.2f} s/step",
        file=sys.stderr,
        flush=True,
    )
    return Job(method, steps, wall, cpu, faults, load_average(), rate)


def warm(neo: Neo, size: int, steps: int, repeat: int) -> list[str]:
    neo.start()
    jobs = payloads(neo, size)
    run_job(neo, jobs["plain"], "plain", steps)  # the checkpoint loads
    alone = [
        [run_job(neo, jobs["plain"], "plain", n) for n in (steps, 2 * steps)] for _ in range(repeat)
    ]
    for method in METHODS[1:]:
        run_job(neo, jobs[method], method, steps)  # its towers and adapter load
    rounds = [
        {m: [run_job(neo, jobs[m], m, n) for n in (steps, 2 * steps)] for m in METHODS}
        for _ in range(repeat)
    ]
    resident = counters(neo.pid)
    neo.stop()
    base_alone = statistics.median(per_step(pair, steps)[0] for pair in alone)
    rows = [
        f"Neo warm, {repeat} rounds of N={steps} and 2N={2 * steps} steps; load average "
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
    for method in METHODS:
        label = method if method != "plain" else "plain, every tower loaded"
        pairs = [r[method] for r in rounds]
        rows.append(row(label, pairs, steps, [r["plain"] for r in rounds], base_alone))
    return rows


def model_bytes(neo: Neo, method: str) -> int:
    """The bytes of the model files ``method`` loads beyond plain's."""
    models = neo.folder / "webui" / "models"
    files = []
    if method in ("flexdiffuse", "both") and neo.vit_l:
        tower = Path(neo.vit_l)
        files += sorted(tower.glob("*.safetensors")) if tower.is_dir() else [tower]
    if method in ("ipadapter", "both"):
        files += [
            models / "ControlNetPreprocessor" / "CLIP-ViT-H-14.safetensors",
            models / "ControlNet" / VARIANTS["sd15"].file,
        ]
    return sum(path.stat().st_size for path in files)


def cold(neo: Neo, size: int, steps: int) -> list[str]:
    rows = [
        f"Neo cold: a fresh server per method, its first image and then a new image at "
        f"{2 * steps} steps",
        "",
        "| method | start s | first image s | new image s | peak RSS GiB | RSS GiB "
        "| model files beyond plain's | load |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for method in METHODS:
        started = neo.start()
        jobs = payloads(neo, size)
        first = run_job(neo, jobs[method], method, 2 * steps)
        again = run_job(neo, jobs[method], method, 2 * steps)
        memory = counters(neo.pid)
        neo.stop()
        rows.append(
            f"| {method} | {started:.0f} | {first.wall:.1f} | {again.wall:.1f} "
            f"| {memory.hwm / 2**30:.2f} | {memory.rss / 2**30:.2f} "
            f"| {model_bytes(neo, method) / 2**30:.2f} GiB | {first.load:.1f} |"
        )
    return rows


def setup(folder: Path) -> None:
    """Random IP-Adapter SD 1.5 and ViT-H/14 files where Neo's built-in IP-Adapter looks."""
    subprocess.run([str(KIT / "live-neo"), "build", str(folder)], check=True)
    store = folder / "ipadapter-models"
    subprocess.run(
        [sys.executable, "-m", "tests.live_comfy.random_ipadapter", str(store), "--vit-h"],
        check=True,
        cwd=ROOT,
    )
    models = folder / "webui" / "models"
    links = {
        models / "ControlNet" / VARIANTS["sd15"].file: store / "ipadapter" / VARIANTS["sd15"].file,
        models / "ControlNetPreprocessor" / "CLIP-ViT-H-14.safetensors": store
        / "clip_vision"
        / VIT_H_FILE,
    }
    for link, target in links.items():
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.link(target, link)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--neo-dir", type=Path, required=True)
    parser.add_argument("--part", nargs="+", default=["cold", "warm"], choices=["cold", "warm"])
    parser.add_argument("--steps", type=int, default=2, help="N (jobs run N and 2N steps)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--no-setup", action="store_true", help="the host is set up already")
    args = parser.parse_args(argv)
    if not args.no_setup:
        setup(args.neo_dir)
    run_parts("bench_ipadapter_neo", Neo(args.neo_dir, free_port()), args, cold, warm)


if __name__ == "__main__":
    main()
