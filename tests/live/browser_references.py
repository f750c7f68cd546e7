"""Save a reference from the FlexDiffuse panel of a running webui and generate with it, in a
real browser, as a user would.

    python -m tests.live.browser_references http://127.0.0.1:7860 OUT_DIR [IMAGE] [VIT_L_TOWER]

Needs what ``browser_check.py`` needs. In the txt2img tab it opens the panel, drops a guidance
image, types a name in "Save as a reference", ticks Overwrite and saves (the fold must say it
saved), refreshes the first image's menu, picks the reference there, removes the image and
generates (the infotext must name the reference), then saves the same name again without
Overwrite (the fold must refuse). Screenshots of each step go to OUT_DIR; the script prints
what it saw and exits non-zero when something is missing. Not part of the test suite.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.live.browser_check import PREFIX, check, finish, generate, open_txt2img, run

NAME = "browser check"


def status(page: Page, before: str = "") -> str:
    """The Save fold's message, once it shows one other than ``before``. gradio 4 shows its
    progress timer ("0.0s") above the old message while the click runs: that is not new."""
    shown = page.locator(f"{PREFIX}reference_status").last  # gradio 3 repeats the id inside
    for _ in range(600):
        page.wait_for_timeout(500)
        if shown.locator(".progress-text, .eta-bar").count():
            continue
        text = shown.inner_text().strip()
        if text != before and ("Saved" in text or "Not saved" in text):
            return text
    return ""


def pick(page: Page, menu: str, value: str) -> None:
    """Choose ``value`` in dropdown ``menu`` (gradio 3 and 4 list options as ``li``)."""
    page.click(f"{menu} input")
    page.wait_for_timeout(500)
    page.locator(f"ul.options li:has-text('{value}')").first.click()
    page.wait_for_timeout(500)


def main(url: str, out: Path, image: Path, vit_l: str | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    with sync_playwright() as playwright:
        browser, page = open_txt2img(playwright, url, vit_l, height=2200)
        page.set_input_files(f"{PREFIX}image input[type=file]", str(image))
        page.wait_for_timeout(2000)
        page.get_by_text("Save as a reference").first.click()
        page.wait_for_timeout(500)
        page.fill(f"{PREFIX}reference_name textarea, {PREFIX}reference_name input", NAME)
        page.locator(f"{PREFIX}reference_overwrite input[type=checkbox]").check()
        page.click(f"{PREFIX}reference_save")
        saved = status(page)
        print("save:", saved)
        check(
            f"Saved the reference '{NAME}'" in saved, "Save says it saved the reference", failures
        )
        page.locator(f"{PREFIX}enabled").screenshot(path=str(out / "1-saved.png"))
        page.click(f"{PREFIX}image_reference_refresh")
        page.wait_for_timeout(1500)
        pick(page, f"{PREFIX}image_reference", NAME)
        clear = ", ".join(
            f"{PREFIX}image button[aria-label='{label}']" for label in ("Clear", "Remove Image")
        )
        page.click(clear)
        page.wait_for_timeout(1000)
        box = page.locator(f"{PREFIX}enabled-visible-checkbox")
        if box.count():
            box.check()
        page.locator(f"{PREFIX}enabled").screenshot(path=str(out / "2-picked.png"))
        shown, progress = generate(page)
        print("progress texts:", " | ".join(progress) or "none")
        page.screenshot(path=str(out / "3-generated.png"), full_page=False)
        check("FlexDiffuse: True" in shown, "the job by reference is guided", failures)
        check(
            f"FlexDiffuse image reference: {NAME}" in shown,
            "the infotext names the reference",
            failures,
        )
        check(
            not any("encoding" in text for text in progress),
            "no image was encoded for the job by reference",
            failures,
        )
        page.locator(f"{PREFIX}reference_overwrite input[type=checkbox]").uncheck()
        page.click(f"{PREFIX}reference_save")
        refused = status(page, saved)
        print("save again:", refused)
        check(
            "exists already" in refused,
            "saving a taken name without Overwrite is refused",
            failures,
        )
        page.locator(f"{PREFIX}enabled").screenshot(path=str(out / "4-refused.png"))
        browser.close()
    return finish(failures)


if __name__ == "__main__":
    run(main, __doc__)
