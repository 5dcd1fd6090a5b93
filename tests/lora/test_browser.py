"""The web builder end to end in real headless Chromium: upload, stages over SSE, crop drag, reload, download.

Needs Debian's ``chromium`` (``make test`` installs it when apt-get can). Where it cannot
be installed the test is skipped with a loud warning, never silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import polars as pl
import pytest

from aesthetic_platform.lora.app import create_app
from aesthetic_platform.lora.config import LoraConfig
from aesthetic_platform.lora.tables import MANIFEST_RECORDS
from tests.fixtures.lora_photos import SMALL_CROP, photo_zip
from tests.fixtures.servers import serving

CHROMIUM = Path(os.environ.get("AESTHETIC_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
STEP_TIMEOUT_MS = 30_000
FAST = LoraConfig.model_validate({"dedup": {"analysis_side": 256}, "crop": SMALL_CROP})


def _skip_loudly(reason: str) -> None:
    message = f"LORA BROWSER TEST SKIPPED: {reason}"
    print(message, file=sys.stderr)
    warnings.warn(message, stacklevel=2)
    pytest.skip(message)


@pytest.fixture
def chromium():
    """A headless Debian Chromium driven by Playwright, or a loud skip where it cannot exist."""
    if not CHROMIUM.exists():
        _skip_loudly(f"{CHROMIUM} is missing and could not be installed (make test runs `apt-get install chromium`)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        _skip_loudly(f"python playwright is not installed: {exc}")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(STEP_TIMEOUT_MS)
            expect.set_options(timeout=STEP_TIMEOUT_MS)  # assertions wait as long as actions
            yield page
        finally:
            browser.close()


def test_upload_watch_adjust_a_crop_reload_and_download(chromium, data_root, tmp_path, test_output):
    from playwright.sync_api import expect

    page = chromium
    archive = photo_zip(tmp_path / "shoot.zip")
    requests: list[tuple[str, str]] = []
    page.on("request", lambda r: requests.append((r.url, r.resource_type)))
    with serving(create_app(data_root, FAST), "LoRA builder", lifespan="auto") as url:
        page.goto(url)
        # the settings form shows the core configs' values and saves them into the nested settings
        expect(page.locator("#repeats")).to_have_value("10")
        expect(page.locator("#caption_max_side")).to_have_value("512")
        page.fill("#class_word", "woman")
        page.click("#save-settings")
        expect(page.locator("#settings-status")).to_contain_text("saved")
        saved = json.loads((data_root.root / "lora" / "settings.json").read_text())
        assert saved["package"] == {"trigger": "ohwx", "class_word": "woman", "repeats": 10} and saved["caption"]["max_side"] == 512
        page.set_input_files("#upload-file", str(archive))
        page.click("#upload")
        expect(page.locator("#upload-status")).to_contain_text("started")
        expect(page.locator("#job-state")).to_have_text("done")
        expect(page.locator("#stages li[data-status=done]")).to_have_count(5)
        assert any(u.endswith("/events") and kind == "eventsource" for u, kind in requests), requests
        job_id = page.evaluate("location.hash").removeprefix("#")
        work_dir = data_root.root / "lora" / job_id

        # preview grid: kept crops with captions, dropped files with their reasons
        expect(page.locator("#kept .tile")).to_have_count(4)
        expect(page.locator("#dropped .tile")).to_have_count(3)
        expect(page.locator("#dropped .tile[data-category='dedup:near'] .reason").first).to_contain_text("dedup:near")
        expect(page.locator("#dropped .tile[data-category='ingest:skipped'] .reason")).to_contain_text("not an image")
        expect(page.locator("#kept .tile .caption").first).to_contain_text("ohwx, ")

        # drag the crop box of one kept image; releasing it recomputes crops, captions and package
        tile = page.locator("#kept .tile").first
        image_id = tile.get_attribute("data-image-id")
        tile.click()
        expect(page.locator("#editor")).to_be_visible()
        page.wait_for_function("document.getElementById('editor-image').complete && document.getElementById('crop-rect').dataset.box")
        before = json.loads(page.locator("#crop-rect").get_attribute("data-box"))
        handle = page.locator("#crop-handle").bounding_box()
        page.mouse.move(handle["x"] + 5, handle["y"] + 5)
        page.mouse.down()
        page.mouse.move(handle["x"] - 40, handle["y"] - 40, steps=5)  # shrink from the corner
        page.mouse.up()
        expect(page.locator("#editor-status")).to_contain_text("crop updated")
        shrunk = json.loads(page.locator("#crop-rect").get_attribute("data-box"))
        rect = page.locator("#crop-rect").bounding_box()
        page.mouse.move(rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2)
        page.mouse.down()
        page.mouse.move(rect["x"] + rect["width"] / 2 + 25, rect["y"] + rect["height"] / 2 + 15, steps=5)  # and move it
        page.mouse.up()
        after = json.loads(page.locator("#crop-rect").get_attribute("data-box"))
        expect(page.locator("#editor-status")).to_have_text(f"crop updated: [{', '.join(map(str, after))}]")
        side = after[2] - after[0]
        assert after[3] - after[1] == side == shrunk[2] - shrunk[0] < before[2] - before[0]  # square, shrunk once
        assert after[0] > shrunk[0] and after[1] > shrunk[1]  # then moved right and down
        assert json.loads((work_dir / "crop_overrides.json").read_text()) == {image_id: after}
        expect(page.locator(f"#kept .tile[data-image-id='{image_id}'] .crop-source")).to_contain_text("manual crop")
        page.screenshot(path=str(test_output / "lora_builder.png"), full_page=True)

        # the job survives a reload: listed, selected from the address, state read from disk
        page.reload()
        expect(page.locator(f"#jobs li[data-job-id='{job_id}']")).to_have_class("selected")
        expect(page.locator("#job-state")).to_have_text("done")
        expect(page.locator("#kept .tile")).to_have_count(4)

        with page.expect_download() as download_info:
            page.click("#download")
        download = download_info.value
        assert download.suggested_filename == "ohwx_lora_dataset.zip"
        data = Path(download.path()).read_bytes()

    manifest = MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(work_dir / "manifest.parquet"))
    with zipfile.ZipFile(io.BytesIO(data)) as packed:
        inside = pl.read_parquet(io.BytesIO(packed.read("manifest.parquet")))
        assert inside.equals(MANIFEST_RECORDS.read(work_dir / "manifest.parquet"))
        kept = [r for r in manifest if r.status == "kept"]
        expected = {"manifest.parquet"} | {r.dataset_path for r in kept} | {r.dataset_path.removesuffix(".png") + ".txt" for r in kept}
        assert set(packed.namelist()) == expected
        for row in kept:
            assert hashlib.sha256(packed.read(row.dataset_path)).hexdigest() == row.image_sha256
            assert packed.read(row.dataset_path.removesuffix(".png") + ".txt").decode() == row.caption + "\n"
    adjusted = next(r for r in manifest if r.image_id == image_id)
    assert adjusted.crop_source == "manual" and adjusted.crop_box == after
    assert len(manifest) == 7 and {r.category for r in manifest if r.status == "dropped"} == {"dedup:near", "ingest:skipped"}
