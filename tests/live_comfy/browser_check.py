"""Load an example workflow in a running ComfyUI's page, queue it and see its result.

    python -m tests.live_comfy.browser_check http://127.0.0.1:8188 OUT_DIR [EXAMPLE] [--search]

Needs Playwright and a Chromium (Debian's ``chromium``; set ``CHROMIUM`` to another binary).
The page loads ``example_workflows/EXAMPLE.json`` (default: the SD 1.5 example; or EXAMPLE, a
workflow file ending in .json) with the live
host's model files and a 64x64, 2-step sampler, the Run button queues it, and the script waits
for the job in ``/history``, then screenshots the graph with its result into OUT_DIR. It prints
what it saw and exits non-zero when the nodes are missing, the workflow does not load or the
job fails. ``--search`` also screenshots the node search for "ipadapter" and "style" and the
simple and Advanced guide nodes side by side. Not part of the test suite: a by-hand check of
what users see (tests/live/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.live.browser_check import check, finish

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_TITLES = [p.stem for p in sorted((ROOT / "example_workflows").glob("*.json"))]
NODES = [
    "FlexDiffuseImageGuidance",
    "FlexDiffuseImageGuidanceAdvanced",
    "FlexDiffuseMappingPreview",
    "FlexDiffuseMappingPreviewAdvanced",
    "FlexDiffuseEncodeReference",
    "FlexDiffuseSaveReference",
    "FlexDiffuseLoadReference",
    "FlexDiffuseGuide",
    "FlexDiffusePreview",
]


def get(url: str):
    with urllib.request.urlopen(url, timeout=60) as response:
        return json.loads(response.read())


def live_workflow(url: str, name: str) -> dict:
    """The example (or the workflow file ``name`` ending in .json) with the server's models,
    at 64x64 and 2 steps."""
    path = Path(name) if name.endswith(".json") else ROOT / "example_workflows" / f"{name}.json"
    workflow = json.loads(path.read_text())
    info = get(f"{url}/object_info")
    ckpts = info["CheckpointLoaderSimple"]["input"]["required"]["ckpt_name"][0]
    towers = info["CLIPVisionLoader"]["input"]["required"]["clip_name"][0]
    for node in workflow["nodes"]:
        if node["type"] == "CheckpointLoaderSimple":
            node["widgets_values"][0] = next(c for c in ckpts if "sd15" in c)
        if node["type"] == "CLIPVisionLoader":
            node["widgets_values"][0] = next(t for t in towers if "vit-l" in t)
        if node["type"] == "EmptyLatentImage":
            node["widgets_values"][:2] = [64, 64]
        if node["type"] == "KSampler":
            node["widgets_values"][2] = 2  # seed, control, steps, ...
    return workflow


def search_and_nodes(page, out: Path, check) -> None:
    """The node search for what users type, and the two guide nodes as the page draws them."""
    page.evaluate("() => window.app.graph.clear()")
    for word in ("ipadapter", "style"):
        page.mouse.dblclick(900, 550)
        page.wait_for_timeout(1500)
        page.keyboard.type(word, delay=60)
        page.wait_for_timeout(2500)
        page.screenshot(path=str(out / f"search-{word}.png"))
        rows = page.locator("[role=dialog] li, [role=option]").all_inner_texts()
        rank = next((n for n, row in enumerate(rows, 1) if "FlexDiffuse" in row), None)
        check(rank is not None, f"search '{word}' lists FlexDiffuse: result {rank} of {len(rows)}")
        page.keyboard.press("Escape")
        page.wait_for_timeout(800)
    page.evaluate(
        """() => {
            const add = (type, x) => {
                const node = window.LiteGraph.createNode(type);
                node.pos = [x, 60];
                window.app.graph.add(node);
                return node.widgets.map(w => w.name);
            };
            const ds = window.app.canvas.ds; ds.scale = 0.9; ds.offset = [20, 20];
            window.app.canvas.setDirty(true, true);
            return [add('FlexDiffuseImageGuidance', 40),
                    add('FlexDiffuseImageGuidanceAdvanced', 480)];
        }"""
    )
    page.wait_for_timeout(1500)
    page.screenshot(path=str(out / "guide-nodes.png"))
    page.evaluate("() => window.app.graph.clear()")


def open_page(
    playwright: Playwright, url: str, out: Path, failures: list[str]
) -> tuple[Browser, Page, list[str]]:
    """Chromium on ComfyUI's page, past the templates browser a first start opens, with
    FlexDiffuse's nodes registered; and the list the page's errors are added to."""
    browser = playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        args=["--no-sandbox"],
    )
    page = browser.new_page(viewport={"width": 1800, "height": 1100})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url, wait_until="networkidle", timeout=180_000)
    page.wait_for_function("window.app && window.app.graph", timeout=120_000)
    overlay = page.locator("[data-testid=dialog-overlay]")
    try:  # the first start opens the templates browser: ours are listed by folder
        overlay.wait_for(timeout=15_000)
        page.get_by_text(ROOT.name, exact=True).first.click(timeout=10_000)
        page.wait_for_timeout(2000)
        page.screenshot(path=str(out / "templates.png"))
        listed = [n for n in EXAMPLE_TITLES if page.get_by_text(n).count()]
        check(bool(listed), f"the templates browser lists the examples ({len(listed)})", failures)
    except PlaywrightTimeout:
        print("note: no templates dialog at start")
    for _ in range(3):
        if overlay.count() == 0:
            break
        page.keyboard.press("Escape")
        page.wait_for_timeout(1000)
    registered = page.evaluate(
        "(names) => names.filter(n => window.LiteGraph.registered_node_types[n])", NODES
    )
    check(registered == NODES, f"the page knows FlexDiffuse's nodes ({registered})", failures)
    return browser, page, errors


def load_graph(page: Page, workflow: dict) -> None:
    """Load ``workflow`` into the page's graph, as opening a workflow file does."""
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", workflow)


def run_in_page(page: Page, url: str, failures: list[str]) -> dict | None:
    """Click Run and wait for the job in ``/history``: its entry once complete, or None."""
    before = set(get(f"{url}/history"))
    run = page.locator("button:has-text('Run')").first
    check(run.count() == 1, "the page has a Run button", failures)
    run.click()
    deadline = time.time() + 600
    while time.time() < deadline:
        time.sleep(2)
        new = [v for k, v in get(f"{url}/history").items() if k not in before]
        done = [v for v in new if v.get("status", {}).get("completed") is not None]
        if done:  # "completed" is false for a failed job
            entry = done[0]
            status = entry["status"]
            check(status.get("status_str") == "success", f"the job succeeded ({status})", failures)
            return entry
    check(False, "the queued job finished", failures)
    return None


def readable(page: Page, offset: tuple[int, int] = (70, 40), scale: float = 0.75) -> None:
    """Zoom the canvas so its text shows: LiteGraph draws no text below 60 % zoom."""
    page.evaluate(
        "([scale, offset]) => { const ds = window.app.canvas.ds; ds.scale = scale;"
        " ds.offset = offset; window.app.canvas.setDirty(true, true); }",
        [scale, list(offset)],
    )
    page.wait_for_timeout(1000)


def main(url: str, out: Path, name: str, search: bool = False) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    workflow = live_workflow(url, name)
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, url, out, failures)
        if search:
            search_and_nodes(page, out, lambda ok, what: check(ok, what, failures))
        load_graph(page, workflow)
        types = page.evaluate("() => window.app.graph._nodes.map(n => n.type)")
        check(bool(set(NODES) & set(types)), f"the workflow loaded: {len(types)} nodes", failures)
        page.screenshot(path=str(out / f"{Path(name).stem}-loaded.png"))
        entry = run_in_page(page, url, failures)
        if entry is not None:
            images = [r for o in entry["outputs"].values() for r in o.get("images", [])]
            check(bool(images), f"the job returned {len(images)} image(s)", failures)
        time.sleep(3)  # the page draws the result on its node
        readable(page)
        page.screenshot(path=str(out / f"{Path(name).stem}-result.png"))
        check(not errors, f"no page errors ({errors[:3]})", failures)
        browser.close()
    print(f"screenshots in {out}")
    return finish(failures)


if __name__ == "__main__":
    arguments = [a for a in sys.argv[1:] if not a.startswith("--")]
    target = arguments[2] if len(arguments) > 2 else "flexdiffuse-sd15-basic"
    sys.exit(main(arguments[0].rstrip("/"), Path(arguments[1]), target, "--search" in sys.argv))
