"""Drive the FlexDiffuse panel of a running webui in a real browser, as a user would.

    python tests/live/browser_check.py http://127.0.0.1:7860 OUT_DIR [IMAGE] [VIT_L_TOWER]

Needs Playwright (``pip install playwright``) and a Chromium (Debian's ``chromium``; set
``CHROMIUM`` to another binary). In the txt2img tab it opens the FlexDiffuse panel, drops a
guidance image (which must switch FlexDiffuse on), generates (the progress bar must say that
FlexDiffuse encodes the image, and the script says whether it was seen loading the vision
model: start with the tower unloaded, e.g. a freshly started webui), previews the mapping
twice (printing the preview's own timing), sends the result to img2img (the guidance image
must travel with the settings) and generates there, then generates without an image (which
must show FlexDiffuse's message). Screenshots of each step go to OUT_DIR; the script prints
what it saw and exits non-zero when something a user relies on is missing. VIT_L_TOWER, when
given, is set as the ViT-L tower setting first (an offline host's local tower folder). Not
part of the test suite: a by-hand check of what the page shows (tests/live/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_IMAGE = ROOT.parent / "shared" / "testdata" / "deer_mod.webp"
PREFIX = "#script_txt2img_flexdiffuse_"


def check(condition: bool, what: str, failures: list[str]) -> None:
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


PROGRESS = "#{tab}_results .progressDiv .progress"
PHASES = ("downloading", "loading", "encoding")


def screenshot_progress(page: Page, path: Path) -> None:
    """The results column with the progress bar, which the page draws just above it."""
    box = page.locator("#txt2img_results").bounding_box()
    if box:
        top = max(0, box["y"] - 40)
        clip = {"x": box["x"], "y": top, "width": box["width"], "height": 160}
        page.screenshot(path=str(path), clip=clip)


def generate(
    page: Page, out: Path | None = None, timeout_s: float = 600, tab: str = "txt2img"
) -> tuple[str, list[str]]:
    """Click Generate in ``tab`` and wait for the job to end: the info (or error) text shown,
    and each FlexDiffuse progress text the progress bar showed meanwhile (each phase's first
    one is screenshotted into ``out``)."""
    page.click(f"#{tab}_generate")
    seen: list[str] = []
    deadline = time.time() + timeout_s
    started = False
    while time.time() < deadline:
        bar = page.locator(PROGRESS.format(tab=tab))
        try:  # the bar can go between the two calls: the job just ended
            text = (bar.first.text_content(timeout=1000) or "") if bar.count() else ""
        except PlaywrightError:
            text = ""
        if "FlexDiffuse" in text and (not seen or seen[-1] != text):
            seen.append(text)
            phase = next((phase for phase in PHASES if phase in text), None)
            if out is not None and phase and not any(phase in earlier for earlier in seen[:-1]):
                screenshot_progress(page, out / f"progress-{phase}.png")
        interrupt = page.is_visible(f"#{tab}_interrupt")
        started = started or interrupt
        if started and not interrupt:
            break
        page.wait_for_timeout(150)
    page.wait_for_timeout(1000)
    return page.inner_text(f"#{tab}_results"), seen


def set_option(url: str, key: str, value: str) -> None:
    data = json.dumps({key: value}).encode()
    headers = {"Content-Type": "application/json"}
    urllib.request.urlopen(urllib.request.Request(f"{url}/sdapi/v1/options", data, headers))


def open_txt2img(
    playwright: Playwright, url: str, vit_l: str | None = None, height: int = 1800
) -> tuple[Browser, Page]:
    """Chromium on the webui's txt2img tab with a prompt, a small job (quick on a CPU) and
    the FlexDiffuse panel open; ``vit_l`` is set as the ViT-L tower setting first."""
    if vit_l:
        set_option(url.rstrip("/"), "flexdiffuse_model_vit_l", vit_l)
    browser = playwright.chromium.launch(
        executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"),
        args=["--no-sandbox"],
    )
    page = browser.new_page(viewport={"width": 1400, "height": height})
    page.goto(url, timeout=120_000)
    page.wait_for_selector("#txt2img_prompt textarea", timeout=120_000)
    page.fill("#txt2img_prompt textarea", "a photo of a deer in a dark forest, oil painting")
    for field, value in (("steps", 2), ("width", 64), ("height", 64)):
        page.fill(f"#txt2img_{field} input[type=number]", str(value))
        page.press(f"#txt2img_{field} input[type=number]", "Enter")
    page.click(f"{PREFIX}enabled .label-wrap")
    return browser, page


def finish(failures: list[str]) -> int:
    """Say whether every check passed; the exit status."""
    print("FAILED: " + "; ".join(failures) if failures else "all checks passed")
    return 1 if failures else 0


def run(main: Callable[[str, Path, Path, str | None], int], usage: str | None) -> None:
    """Run a browser pass from the command line: URL OUT_DIR [IMAGE] [VIT_L_TOWER]."""
    if len(sys.argv) < 3:
        sys.exit(usage)
    image = Path(sys.argv[3]) if sys.argv[3:] else DEFAULT_IMAGE
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), image, sys.argv[4] if sys.argv[4:] else None))


def main(url: str, out: Path, image: Path, vit_l: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser, page = open_txt2img(playwright, url, vit_l)
        panel = page.locator(f"{PREFIX}enabled")
        panel.screenshot(path=str(out / "1-panel.png"))
        box = page.locator(f"{PREFIX}enabled-visible-checkbox")
        page.set_input_files(f"{PREFIX}image input[type=file]", str(image))
        page.wait_for_timeout(2000)
        if box.count():
            check(box.is_checked(), "the open panel with an image has FlexDiffuse on", failures)
        # First generation: the tower is not loaded yet, so the progress bar must say that
        # FlexDiffuse loads it and then encodes the image (issue 12).
        shown, progress = generate(page, out)
        print("progress texts:", " | ".join(progress) or "none")
        # The page asks for the progress text about once a second: a load from a warm disk
        # cache can end between two asks, so it is reported, not required.
        loading = any("FlexDiffuse: loading" in text for text in progress)
        print(f"{'ok  ' if loading else 'note'} the progress text said FlexDiffuse is loading")
        check(
            any("FlexDiffuse: encoding" in text for text in progress),
            "the progress text said FlexDiffuse is encoding the image",
            failures,
        )
        page.screenshot(path=str(out / "2-generated.png"), full_page=False)
        check("FlexDiffuse: True" in shown, "the infotext says FlexDiffuse: True", failures)
        check("FlexDiffuse version" in shown, "the infotext records the version", failures)
        timings: list[str] = []
        preview = page.locator(f"{PREFIX}preview .flexdiffuse-preview")
        for _ in range(2):
            page.click(f"{PREFIX}preview_button")
            deadline = time.time() + 300
            while time.time() < deadline:  # until a new preview (its timing line) is shown
                page.wait_for_timeout(1000)
                if preview.count():
                    last_line = preview.last.inner_text().strip().splitlines()[-1]
                    if not timings or last_line != timings[-1]:
                        timings.append(last_line)
                        break
        print("preview:", " | ".join(timings))
        rows = page.locator(f"{PREFIX}preview tr.flexdiffuse-position").count()
        check(rows > 0, f"the preview lists prompt tokens ({rows} rows)", failures)
        page.locator(f"{PREFIX}preview").first.screenshot(path=str(out / "3-preview.png"))
        # Send to img2img: the settings and the guidance image travel (issue 18, defect 3).
        page.click("#txt2img_send_to_img2img")
        page.wait_for_timeout(3000)
        sent = page.locator("#script_img2img_flexdiffuse_image img")
        check(sent.count() > 0, "Send to img2img carries the guidance image", failures)
        shown, _ = generate(page, tab="img2img")
        page.screenshot(path=str(out / "4-img2img.png"), full_page=False)
        check("FlexDiffuse: True" in shown, "the img2img job sent from txt2img is guided", failures)
        # The image's clear button: "Clear" in gradio 3 (A1111), "Remove Image" in gradio 4.
        img2img = "#script_img2img_flexdiffuse_"
        clear = ", ".join(
            f"{img2img}image button[aria-label='{label}']" for label in ("Clear", "Remove Image")
        )
        page.click(clear)
        page.wait_for_timeout(1000)
        box = page.locator(f"{img2img}enabled-visible-checkbox")
        if box.count():
            box.check()
        shown, _ = generate(page, tab="img2img")
        page.screenshot(path=str(out / "5-no-image.png"), full_page=False)
        check("no guidance image" in shown, "a job without an image shows the message", failures)
        browser.close()
    return finish(failures)


if __name__ == "__main__":
    run(main, __doc__)
