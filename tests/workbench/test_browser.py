"""End to end in real headless Chromium: upload, initialise, generate, judge by keyboard, submit, undo.

Needs Debian's ``chromium`` (``make test`` installs it when apt-get can). Where it
cannot be installed the test is skipped with a loud warning, never silently.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

import pytest

from aesthetic_platform.workbench.app import create_app
from aesthetic_platform.workbench.selections import selections_path
from tests.workbench.conftest import PROMPTS_CSV, live_server

CHROMIUM = Path(os.environ.get("AESTHETIC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEP_TIMEOUT_MS = 20_000
LOG_WAIT_S = 20.0


def _skip_loudly(reason: str) -> None:
    message = f"WORKBENCH BROWSER TEST SKIPPED: {reason}"
    print(message, file=sys.stderr)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


def _wait_for_lines(path: Path, count: int) -> list[dict]:
    deadline = time.monotonic() + LOG_WAIT_S
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.fixture
def chromium():
    """A headless Debian Chromium driven by Playwright, or a loud skip where it cannot exist."""
    if not CHROMIUM.exists():
        _skip_loudly(f"{CHROMIUM} is missing and could not be installed (make test runs `apt-get install chromium`)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _skip_loudly(f"python playwright is not installed: {exc}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(STEP_TIMEOUT_MS)
            from playwright.sync_api import expect

            expect.set_options(timeout=STEP_TIMEOUT_MS)  # assertions wait as long as actions
            yield page
        finally:
            browser.close()


def test_label_a_batch_in_headless_chromium(chromium, data_root, tmp_path, test_output):
    from playwright.sync_api import expect

    page = chromium
    prompt_file = tmp_path / "campaign.csv"
    prompt_file.write_bytes(PROMPTS_CSV)
    log = selections_path(data_root)
    with live_server(create_app(data_root, "tester", scorer="auto")) as url:
        page.goto(url)

        # settings tab: upload the prompt file, small fast batches, initialise
        page.set_input_files("#prompt-file", str(prompt_file))
        page.click("#upload")
        expect(page.locator("#upload-status")).to_have_text("3 prompts loaded from campaign.csv")
        page.fill("#seeds_per_batch", "4")
        page.select_option("#pixel_budget", "65536")
        page.click("#init")

        # workbench tab: first prompt, four tiles with their seeds, no assist number
        expect(page.locator("#panel-workbench")).to_be_visible()
        tiles = page.locator(".tile")
        expect(tiles).to_have_count(4)
        expect(page.locator("#prompt-text")).to_have_text("A red poster of a cat")
        page.wait_for_function("[...document.querySelectorAll('.tile img')].every(i => i.complete && i.naturalWidth > 0)")
        seeds = [int(s) for s in tiles.evaluate_all("ts => ts.map(t => t.dataset.seed)")]
        assert len(set(seeds)) == 4
        expect(page.locator(".tile .seed").first).to_have_text(f"seed {seeds[0]}")
        assert set(page.locator(".tile .score").all_inner_texts()) == {"assist: unavailable"}
        expect(page.locator("#assist-status")).to_contain_text("no registered aesthetic scorer")

        # judge by keyboard: tiles 1 and 3 golden (3 toggled twice on the way), tab switch keeps it
        page.locator("body").click(position={"x": 5, "y": 5})
        for key in ("1", "3", "2", "3", "2", "3"):
            page.keyboard.press(key)
        expect(page.locator(".tile.golden")).to_have_count(2)
        page.click("#tab-settings")
        page.click("#tab-workbench")
        expect(page.locator(".tile.golden")).to_have_count(2)
        page.screenshot(path=str(test_output / "workbench.png"), full_page=True)

        page.keyboard.press("Enter")
        (record,) = _wait_for_lines(log, 1)
        assert record["kind"] == "selection" and record["annotator"] == "tester"
        assert record["prompt"] == "A red poster of a cat"
        assert record["golden_seeds"] == [seeds[0], seeds[2]] and record["bad_seeds"] == [seeds[1], seeds[3]]
        assert record["generator"] == "poster-renderer/v1" and (record["width"], record["height"]) == (256, 256)

        # submitting moved on to the next prompt (prefetched); U brings the judged batch back
        expect(page.locator("#prompt-text")).to_have_text("A blue poster of a car")
        page.keyboard.press("u")
        expect(page.locator("#prompt-text")).to_have_text("A red poster of a cat")
        expect(page.locator(".tile.golden")).to_have_count(2)
        undo = _wait_for_lines(log, 2)[1]
        assert undo["kind"] == "undo" and undo["undoes"] == record["submission_id"]

        # A marks all bad, Enter stores it; N / ArrowRight go on without submitting
        page.keyboard.press("a")
        expect(page.locator(".tile.golden")).to_have_count(0)
        page.keyboard.press("Enter")
        all_bad = _wait_for_lines(log, 3)[2]
        assert all_bad["golden_seeds"] == [] and sorted(all_bad["bad_seeds"]) == sorted(seeds)
        expect(page.locator("#prompt-text")).to_have_text("A blue poster of a car")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#prompt-text")).to_have_text("A gold sneaker poster")
        page.keyboard.press("n")
        expect(page.locator("#bench-status")).to_have_text("done")
    assert (test_output / "workbench.png").stat().st_size > 0
    assert len(log.read_text().splitlines()) == 3


def test_assist_scores_are_shown_and_can_be_hidden(chromium, data_root, tmp_path):
    from playwright.sync_api import expect

    from tests.workbench.conftest import fake_scorer

    page = chromium
    prompt_file = tmp_path / "one.json"
    prompt_file.write_text(json.dumps(["A red poster of a cat"]))
    with live_server(create_app(data_root, "tester", scorer=fake_scorer)) as url:
        page.goto(url)
        page.set_input_files("#prompt-file", str(prompt_file))
        page.click("#upload")
        expect(page.locator("#upload-status")).to_have_text("1 prompts loaded from one.json")
        page.fill("#seeds_per_batch", "2")
        page.click("#init")
        expect(page.locator(".tile")).to_have_count(2)
        scores = page.locator(".tile .score")
        for text in scores.all_inner_texts():
            value = float(text.removeprefix("assist: "))  # a real number from the scorer
            assert 0.0 <= value <= 1.0
        expect(scores.first).to_be_visible()
        page.check("#hide-scores")  # anti-anchoring: judge without the number
        expect(scores.first).to_be_hidden()
        expect(page.locator(".tile .seed").first).to_be_visible()
