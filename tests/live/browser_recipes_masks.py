"""Pick an image recipe and paint a reference mask in a running webui's panel, in a browser.

    python -m tests.live.browser_recipes_masks http://127.0.0.1:7860 OUT_DIR [IMAGE] [VIT_L_TOWER]

Like ``browser_check.py`` (Playwright and Debian's ``chromium``): in txt2img it opens the
FlexDiffuse panel, drops a guidance image, picks *Style only* in its recipe menu, opens its
mask editor (which must hold a copy of the image), paints over the left half with the
host's own editor (gradio 3's sketch tool or gradio 4's image editor), generates (the infotext
must record the recipe and the mask's hash) and previews (the masked patches are dimmed and
the recipe is named). Screenshots of each step go to OUT_DIR; the script prints what it saw
and exits non-zero when something is missing. Not part of the test suite: a by-hand check.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page, sync_playwright

from tests.live.browser_check import (
    PREFIX,
    check,
    finish,
    generate,
    open_txt2img,
    run,
)

STYLE = "Style only"


def pick_recipe(page: Page, label: str) -> None:
    """Choose ``label`` in the first image's recipe menu (gradio 3 and 4 dropdowns)."""
    page.locator(f"{PREFIX}image_recipe input").first.click(timeout=10_000)
    page.wait_for_timeout(500)
    page.locator("ul.options li", has_text=label).first.click(timeout=10_000)
    page.wait_for_timeout(500)


def flexdiffuse_ids(page: Page) -> list[str]:
    """The ids of the page's FlexDiffuse elements (what a failed step could not find)."""
    return page.eval_on_selector_all(
        "[id*=flexdiffuse]", "elements => elements.map(element => element.id)"
    )


def paint_left_half(page: Page, editor: str) -> bool:
    """Paint the left half of the editor's picture; whether a canvas was found to paint on."""
    for label in ("Draw", "Brush", "Draw button"):  # gradio 4 picks its brush tool first
        button = page.locator(f"{editor} button[aria-label='{label}']")
        if button.count():
            button.first.click()
            page.wait_for_timeout(300)
            break
    canvases = page.locator(f"{editor} canvas")
    if not canvases.count():
        return False
    box = canvases.last.bounding_box()
    if not box:
        return False
    # Strokes a brush's width apart fill the half; few mouse steps each, as gradio 4's editor
    # takes seconds per stroke in headless chromium's software rendering.
    for column in range(12):
        x = box["x"] + box["width"] * (0.02 + 0.04 * column)
        page.mouse.move(x, box["y"] + box["height"] * 0.03)
        page.mouse.down()
        page.mouse.move(x, box["y"] + box["height"] * 0.97, steps=3)
        page.mouse.up()
    page.wait_for_timeout(800)
    return True


def main(url: str, out: Path, image: Path, vit_l: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser, page = open_txt2img(playwright, url, vit_l, height=2200)
        page.set_input_files(f"{PREFIX}image input[type=file]", str(image))
        page.wait_for_timeout(2000)
        page.locator(f"{PREFIX}enabled").screenshot(path=str(out / "0-image.png"))
        try:
            pick_recipe(page, STYLE)
        except PlaywrightError as error:
            print(f"the recipe menu: {error}".splitlines()[0])
            print("FlexDiffuse ids:", " ".join(flexdiffuse_ids(page)))
        menu = page.locator(f"{PREFIX}image_recipe")
        shown = (menu.first.inner_text() + " " + menu.first.inner_html()) if menu.count() else ""
        check(STYLE in shown, f"the recipe menu shows {STYLE!r}", failures)
        page.wait_for_timeout(1500)
        editor = f"{PREFIX}image_mask"
        check(
            page.locator(f"{editor} img, {editor} canvas").count() > 0,
            "the mask editor holds the guidance image to paint on",
            failures,
        )
        page.locator(editor).screenshot(path=str(out / "1-mask-editor.png"))
        check(paint_left_half(page, editor), "a canvas to paint the mask on", failures)
        page.locator(editor).screenshot(path=str(out / "2-mask-painted.png"))
        page.locator(f"{PREFIX}enabled").screenshot(path=str(out / "3-panel.png"))
        text, _ = generate(page)
        page.screenshot(path=str(out / "4-generated.png"), full_page=False)
        check("FlexDiffuse: True" in text, "the job is guided", failures)
        check(f"FlexDiffuse image recipe: {STYLE}" in text, "infotext records the recipe", failures)
        check("FlexDiffuse image mask: " in text, "infotext records the mask's hash", failures)
        page.click(f"{PREFIX}preview_button")
        preview = page.locator(f"{PREFIX}preview .flexdiffuse-preview")
        deadline = time.time() + 300
        while time.time() < deadline and not preview.count():
            page.wait_for_timeout(1000)
        page.wait_for_timeout(1000)
        rows = page.locator(f"{PREFIX}preview tr.flexdiffuse-position").count()
        check(rows > 0, f"the preview lists prompt tokens ({rows} rows)", failures)
        page.locator(f"{PREFIX}preview").first.screenshot(path=str(out / "5-preview.png"))
        print("preview:", preview.last.inner_text()[:300].replace("\n", " | ") if rows else "")
        browser.close()
    return finish(failures)


if __name__ == "__main__":
    run(main, __doc__)
