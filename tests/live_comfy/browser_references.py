"""Paint a mask with ComfyUI's Mask Editor, and save and pick a reference, in a running ComfyUI's
page, as a user would.

    python -m tests.live_comfy.browser_references http://127.0.0.1:8188 OUT_DIR

Needs what ``browser_check.py`` needs, and the live host's SD 1.5 and ViT-L/14 (64x64, 2 steps).

1. The mask: the SD 1.5 Advanced example; on its Load Image node, right-click, "Open in
   MaskEditor", paint three strokes with the mouse, Save; drag the node's MASK onto the guide's
   ``image_mask`` and Run. The job must succeed with the painted picture (``clipspace-...png``),
   whose alpha must hold the strokes, and give other pixels than the same job without the
   mask (queued over HTTP from the job's own prompt).
2. The reference: the SD 1.5 basic example with Encode Reference and Save Reference beside it
   (recipe "Style only", a new name) and a muted Load Reference whose menu lacks that name;
   Run. Then press R, pick the name in Load Reference's menu, unmute it, drag it onto the
   guide's image input, mute the two reference nodes, disconnect the vision model and Run:
   the job must succeed and give exactly the pixels of the job from the image. The saved file
   is removed at the end (when the server's folder is on this machine).

Screenshots of each step go to OUT_DIR; the script prints what it saw and exits non-zero when
something is missing. Not part of the test suite (tests/live/README.md).
"""

from __future__ import annotations

import copy
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.live.browser_check import check, finish
from tests.live_comfy.browser_check import (
    get,
    live_workflow,
    load_graph,
    open_page,
    readable,
    run_in_page,
)

ADVANCED = "FlexDiffuseImageGuidanceAdvanced"
GUIDES = (ADVANCED, "FlexDiffuseImageGuidance")

# Where a node, one of its sockets or widgets is on the screen: graph units through the
# canvas's offset and zoom.
SCREEN = """([id, what, which]) => {
    const c = window.app.canvas, n = c.graph.getNodeById(id);
    const box = c.canvas.getBoundingClientRect();
    let p;
    if (what === 'output') p = n.getOutputPos(which);
    else if (what === 'input') p = n.getInputPos(n.findInputSlot(which));
    else if (what === 'widget') {
        const w = n.widgets.find(w => w.name === which);
        p = [n.pos[0] + n.size[0] / 2, n.pos[1] + (w.y ?? w.last_y) + 10];
    } else p = [n.pos[0] + n.size[0] / 2, n.pos[1] + n.size[1] * 0.7];
    const [ox, oy] = c.ds.offset, s = c.ds.scale;
    return [box.left + (p[0] + ox) * s, box.top + (p[1] + oy) * s];
}"""

# RGBA values of a picture the server serves, decoded by the page (no imaging library here).
PIXELS = """async (src) => {
    const img = new Image(); img.src = src; await img.decode();
    const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
    const g = c.getContext('2d'); g.drawImage(img, 0, 0);
    return Array.from(g.getImageData(0, 0, c.width, c.height).data);
}"""


def screen(page: Page, node: int, what: str = "body", which: str | int = 0) -> tuple[float, float]:
    x, y = page.evaluate(SCREEN, [node, what, which])
    return x, y


def node_id(page: Page, node_type: str) -> int:
    return page.evaluate("(t) => window.app.graph._nodes.find(n => n.type === t).id", node_type)


def linked(page: Page, source: int, target: int, name: str) -> bool:
    """Whether ``target``'s input ``name`` takes a link from ``source``."""
    return page.evaluate(
        """([source, target, name]) => {
            const g = window.app.graph, n = g.getNodeById(target);
            const link = n.inputs[n.findInputSlot(name)].link;
            return link != null && g.links[link]?.origin_id === source;
        }""",
        [source, target, name],
    )


def drag_link(page: Page, source: int, slot: int, target: int, name: str, failures) -> None:
    """Drag from ``source``'s output ``slot`` onto ``target``'s input ``name`` with the mouse;
    the script links them itself if the drag did not (and says so), to check the rest."""
    page.mouse.move(*screen(page, source, "output", slot))
    page.mouse.down()
    page.mouse.move(*screen(page, target, "input", name), steps=20)
    page.mouse.up()
    page.wait_for_timeout(800)
    dragged = linked(page, source, target, name)
    check(dragged, f"a mouse drag links node {source} to the guide's {name}", failures)
    if not dragged:
        page.evaluate(
            """([source, slot, target, name]) => {
                const g = window.app.graph, t = g.getNodeById(target);
                g.getNodeById(source).connect(slot, t, t.findInputSlot(name));
            }""",
            [source, slot, target, name],
        )


def view_url(url: str, image: dict) -> str:
    query = {k: image[k] for k in ("filename", "subfolder", "type") if k in image}
    return f"{url}/view?{urllib.parse.urlencode(query)}"


def saved_image(entry: dict) -> dict:
    """The job's Save Image picture (Save Reference shows a thumbnail of type "temp")."""
    pictures = [r for o in entry["outputs"].values() for r in o.get("images", [])]
    return next(r for r in pictures if r.get("type") == "output")


def run_over_http(url: str, prompt: dict) -> dict | None:
    """Queue an API prompt and wait for its ``/history`` entry (``client.ComfyClient`` needs
    numpy and PIL, which Playwright's venv lacks)."""
    request = urllib.request.Request(
        f"{url}/prompt",
        json.dumps({"prompt": prompt}).encode(),
        {"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        prompt_id = json.loads(response.read())["prompt_id"]
    for _ in range(300):
        time.sleep(2)
        entry = get(f"{url}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
    return None


def run_and_show(page: Page, url: str, out: Path, shot: str, failures: list[str]) -> dict | None:
    """Run the page's graph and screenshot it: the job's ``/history`` entry if it succeeded."""
    entry = run_in_page(page, url, failures)
    page.wait_for_timeout(3000)  # the page draws the result on its node
    page.screenshot(path=str(out / shot))
    return entry if entry and entry["status"].get("status_str") == "success" else None


def paint_mask(page: Page, url: str, out: Path, failures: list[str]) -> None:
    """Step 1: a mask painted in the Mask Editor guides the Advanced node's image."""
    load_graph(page, live_workflow(url, "flexdiffuse-sd15-advanced"))
    readable(page)
    loader, guide = node_id(page, "LoadImage"), node_id(page, ADVANCED)
    page.wait_for_function(f"window.app.graph.getNodeById({loader}).imgs?.length", timeout=30_000)
    page.screenshot(path=str(out / "1-advanced-example.png"))
    page.mouse.click(*screen(page, loader), button="right")
    entry = page.get_by_text("Open in MaskEditor").first
    entry.wait_for(timeout=10_000)
    page.screenshot(path=str(out / "2-context-menu.png"))
    entry.click()
    editor = page.locator("[data-testid=mask-editor-root]")
    editor.wait_for(timeout=30_000)
    thickness = page.locator("[data-testid=brush-thickness-input]")
    thickness.wait_for(timeout=60_000)  # shown once the editor has loaded the picture
    thickness.fill("60")
    thickness.press("Enter")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "3-mask-editor.png"))
    box = page.locator("#maskEditorCanvasContainer").bounding_box()
    check(box is not None, f"the Mask Editor shows its canvas ({box})", failures)
    x0, y0, w, h = box["x"], box["y"], box["width"], box["height"]
    for row in (0.35, 0.45, 0.55):  # three strokes over the picture's middle left
        page.mouse.move(x0 + w * 0.3, y0 + h * row)
        page.mouse.down()
        page.mouse.move(x0 + w * 0.5, y0 + h * row, steps=25)
        page.mouse.up()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(out / "4-painted.png"))
    page.locator("[role=dialog] button:has-text('Save')").first.click()
    editor.wait_for(state="detached", timeout=60_000)
    page.wait_for_timeout(2000)
    picture = page.evaluate(f"window.app.graph.getNodeById({loader}).widgets[0].value")
    check("clipspace" in picture, f"Load Image takes the painted picture ({picture})", failures)
    drag_link(page, loader, 1, guide, "image_mask", failures)
    page.screenshot(path=str(out / "5-mask-connected.png"))
    masked = run_and_show(page, url, out, "6-masked-result.png", failures)
    if masked is None:
        return
    prompt = masked["prompt"][2]
    image = next(v for v in prompt.values() if v["class_type"] == "LoadImage")["inputs"]["image"]
    folder, _, name = image.removesuffix(" [input]").rpartition("/")
    alpha = page.evaluate(
        PIXELS, view_url(url, {"filename": name, "subfolder": folder, "type": "input"})
    )[3::4]
    painted = sum(a < 128 for a in alpha) / len(alpha)
    check(
        0.01 < painted < 0.9,
        f"the saved picture's alpha holds the strokes: {painted:.1%} painted",
        failures,
    )
    guide_inputs = next(v for v in prompt.values() if v["class_type"] == ADVANCED)["inputs"]
    check(
        "image_mask" in guide_inputs,
        f"the job's guide takes the mask ({guide_inputs.get('image_mask')})",
        failures,
    )
    plain_prompt = copy.deepcopy(prompt)
    for node in plain_prompt.values():
        if node["class_type"] == ADVANCED:
            node["inputs"].pop("image_mask", None)
    plain = run_over_http(url, plain_prompt)
    check(
        plain is not None and plain["status"].get("status_str") == "success",
        "the same job without the mask succeeded",
        failures,
    )
    if plain is not None:
        with_mask = page.evaluate(PIXELS, view_url(url, saved_image(masked)))
        without = page.evaluate(PIXELS, view_url(url, saved_image(plain)))
        changed = sum(a != b for a, b in zip(with_mask, without, strict=True))
        check(
            changed > 0,
            f"the mask changes the image: {changed} of {len(without)} values differ",
            failures,
        )


def save_and_pick(page: Page, url: str, out: Path, failures: list[str]) -> None:
    """Step 2: Save Reference from the page, then the new name picked in Load Reference's
    menu after R, and a job from it."""
    name = time.strftime("browser-check-%Y%m%d-%H%M%S")
    load_graph(page, live_workflow(url, "flexdiffuse-sd15-basic"))
    ids = page.evaluate(
        """(name) => {
            const g = window.app.graph, L = window.LiteGraph;
            const find = t => g._nodes.find(n => n.type === t);
            const add = (type, pos) => {
                const n = L.createNode(type); n.pos = pos; g.add(n); return n;
            };
            const set = (n, w, v) => { n.widgets.find(x => x.name === w).value = v; };
            const loader = find('LoadImage'), vision = find('CLIPVisionLoader');
            const guide = find('FlexDiffuseImageGuidance');
            set(guide, 'image_recipe', 'Style only');
            const encode = add('FlexDiffuseEncodeReference', [400, 300]);
            set(encode, 'recipe', 'Style only');
            loader.connect(0, encode, encode.findInputSlot('images'));
            vision.connect(0, encode, encode.findInputSlot('clip_vision'));
            const save = add('FlexDiffuseSaveReference', [1480, 180]);
            set(save, 'name', name);
            encode.connect(0, save, 0);
            const load = add('FlexDiffuseLoadReference', [1120, 420]);
            load.mode = 2;  // 'Never': the page's Ctrl+M
            window.app.canvas.setDirty(true, true);
            return {guide: guide.id, encode: encode.id, save: save.id, load: load.id,
                    vision: vision.id, listed: load.widgets[0].options.values};
        }""",
        name,
    )
    readable(page)
    check(
        name not in ids["listed"], f"Load Reference's menu lacks '{name}' before the save", failures
    )
    page.screenshot(path=str(out / "7-save-graph.png"))
    saved = run_and_show(page, url, out, "8-saved.png", failures)
    if saved is None:
        return
    text = " ".join(saved["outputs"].get(str(ids["save"]), {}).get("text", []))
    print("Save Reference says:", text)
    check(
        f"Saved the reference '{name}'" in text, "Save Reference says it saved the name", failures
    )
    page.mouse.click(900, 1050)  # the canvas, so that R reaches the page's key bindings
    page.keyboard.press("r")
    page.wait_for_function(
        "([id, name]) => window.app.graph.getNodeById(id).widgets[0].options.values.includes(name)",
        arg=[ids["load"], name],
        timeout=30_000,
    )
    page.mouse.click(*screen(page, ids["load"], "widget", "reference"))
    option = page.locator(".litemenu-entry", has_text=name).first
    option.wait_for(timeout=10_000)
    page.screenshot(path=str(out / "9-reference-menu.png"))
    option.click()
    page.wait_for_timeout(500)
    picked = page.evaluate(f"window.app.graph.getNodeById({ids['load']}).widgets[0].value")
    check(picked == name, f"the menu picked the new reference ({picked})", failures)
    page.evaluate(
        """(ids) => {
            const g = window.app.graph, guide = g.getNodeById(ids.guide);
            g.getNodeById(ids.load).mode = 0;
            g.getNodeById(ids.encode).mode = 2;
            g.getNodeById(ids.save).mode = 2;
            guide.disconnectInput(guide.findInputSlot('clip_vision'));
        }""",
        ids,
    )
    drag_link(page, ids["load"], 0, ids["guide"], "image", failures)
    page.screenshot(path=str(out / "10-reference-connected.png"))
    loaded = run_and_show(page, url, out, "11-reference-result.png", failures)
    if loaded is None:
        return
    prompt = loaded["prompt"][2]
    load = [v["inputs"] for v in prompt.values() if v["class_type"] == "FlexDiffuseLoadReference"]
    check(load == [{"reference": name}], f"the job loads the reference ({load})", failures)
    guide = next(v for v in prompt.values() if v["class_type"] in GUIDES)["inputs"]
    check("clip_vision" not in guide, "the job's guide takes no vision model", failures)
    from_images = page.evaluate(PIXELS, view_url(url, saved_image(saved)))
    from_reference = page.evaluate(PIXELS, view_url(url, saved_image(loaded)))
    check(
        from_reference == from_images,
        "the job from the reference gives the image's pixels exactly",
        failures,
    )
    where = re.search(r" to (.+\.safetensors)\.", text)
    if where and Path(where[1]).is_file():
        Path(where[1]).unlink()
        print(f"removed {where[1]}")


def main(url: str, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser, page, errors = open_page(playwright, url, out, failures)
        paint_mask(page, url, out, failures)
        save_and_pick(page, url, out, failures)
        check(not errors, f"no page errors ({errors[:3]})", failures)
        browser.close()
    print(f"screenshots in {out}")
    return finish(failures)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1].rstrip("/"), Path(sys.argv[2])))
