"""The workbench's Labels tab: its API, and the tab itself in real headless Chromium (keys, skip, undo, review order)."""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aesthetic_platform.embeddings import Item, Store
from aesthetic_platform.embeddings.embedders import image_item
from aesthetic_platform.embeddings.labels import RETRACTED, LabelRecord, add_labels, effective_labels, label_history
from aesthetic_platform.workbench.app import create_app

CHROMIUM = Path(os.environ.get("AESTHETIC_CHROMIUM", "/usr/bin/chromium"))


@pytest.fixture
def labelled_root(data_root, tmp_path, monkeypatch):
    """Four images in the data root's store: #0 disputed (ann yes, bob no), #1 labelled once, #2 and #3 unlabelled."""
    monkeypatch.delenv("AESTHETIC_DB_URL", raising=False)
    items = []
    for i in range(4):
        path = tmp_path / f"poster{i}.png"
        Image.new("RGB", (80, 60), (60 * i, 200 - 40 * i, 90)).save(path)
        items.append(image_item(path))
    with Store.open(root=data_root) as store:
        store.put_items(items)
        add_labels(store, [
            LabelRecord(item=items[0].sha256, task="usable", annotator="ann", label="yes"),
            LabelRecord(item=items[0].sha256, task="usable", annotator="bob", label="no"),
            LabelRecord(item=items[1].sha256, task="usable", annotator="ann", label="yes"),
        ])
    return data_root, [item.sha256 for item in items]


def _effective(root, annotator: str) -> dict[str, str]:
    with Store.open(root=root) as store:
        return {r.item: r.label for r in effective_labels(store, "usable") if r.annotator == annotator}


def test_labelling_api_review_first_skip_submit_undo(labelled_root) -> None:
    root, shas = labelled_root
    unlabelled = sorted(shas[2:])
    with TestClient(create_app(root, "carol", scorer=None)) as client:
        first = client.get("/labels/next", params={"task": "usable", "annotator": "carol"}).json()
        assert first["review"] is True and first["item"]["sha256"] == shas[0] and first["item"]["votes"] == {"no": 1, "yes": 1}
        image = client.get(first["item"]["url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        vote = {"item": shas[0], "task": "usable", "label": "yes", "annotator": "carol"}
        assert client.post("/labels/submit", json=vote).status_code == 200
        after = client.get("/labels/next", params={"task": "usable", "annotator": "carol"}).json()
        assert after["review"] is False and after["item"]["sha256"] == unlabelled[0]  # fewest labels first
        skipped = client.get("/labels/next", params={"task": "usable", "annotator": "carol", "skip": unlabelled[0]}).json()
        assert skipped["item"]["sha256"] == unlabelled[1]
        # ann already labelled #0: her queue skips it
        assert client.get("/labels/next", params={"task": "usable", "annotator": "ann"}).json()["item"]["sha256"] == unlabelled[0]
        client.post("/labels/submit", json={"item": shas[0], "task": "usable", "label": "no", "annotator": "carol"})
        assert _effective(root, "carol") == {shas[0]: "no"}
        undone = client.post("/labels/undo", json={"task": "usable", "annotator": "carol"}).json()
        assert undone["restored"] == "yes" and _effective(root, "carol") == {shas[0]: "yes"}
        assert client.post("/labels/undo", json={"task": "usable", "annotator": "carol"}).json()["restored"] is None
        assert _effective(root, "carol") == {}
        assert client.post("/labels/undo", json={"task": "usable", "annotator": "carol"}).status_code == 409
        bad = client.post("/labels/submit", json={"item": "0" * 64, "task": "usable", "label": "yes", "annotator": "carol"})
        assert bad.status_code == 404
        assert client.get("/labels/image/" + "0" * 64).status_code == 404
    with Store.open(root=root) as store:
        assert [r.label for r in label_history(store, "usable") if r.annotator == "carol"] == ["yes", "no", "yes", RETRACTED]


def test_image_route_refuses_a_changed_file(labelled_root, tmp_path) -> None:
    root, shas = labelled_root
    Image.new("RGB", (80, 60), (1, 2, 3)).save(tmp_path / "poster3.png")  # the file no longer has the item's hash
    with TestClient(create_app(root, "carol", scorer=None)) as client:
        assert client.get(f"/labels/image/{shas[3]}").status_code == 404
        with Store.open(root=root) as store:
            store.put_items([Item("a" * 64, "text", text="a text item")])
        assert client.get("/labels/image/" + "a" * 64).status_code == 404


def test_items_under_a_moved_or_copied_root_are_served_from_where_it_is_now(tmp_path, monkeypatch) -> None:
    """The store keeps the absolute paths it was given; a root that was moved or copied reads its own images back
    under its current place (an item outside the root, and a relative path, are kept as written)."""
    import shutil

    from aesthetic_platform.embeddings.snapshot import read_snapshot, take_snapshot, write_snapshot
    from aesthetic_platform.paths import DataRoot

    monkeypatch.delenv("AESTHETIC_DB_URL", raising=False)
    first = DataRoot(tmp_path / "first").ensure()
    inside = first.images / "b1" / "poster.png"
    inside.parent.mkdir(parents=True)
    Image.new("RGB", (80, 60), (200, 40, 90)).save(inside)
    outside = tmp_path / "shared" / "outside.png"
    outside.parent.mkdir()
    Image.new("RGB", (80, 60), (20, 40, 190)).save(outside)
    items = [image_item(inside), image_item(outside), Item("b" * 64, "image", path="relative/poster.png")]
    with Store.open(root=first) as store:
        store.put_items(items)
        add_labels(store, [LabelRecord(item=items[0].sha256, task="usable", annotator="ann", label="yes")])
        write_snapshot(first, take_snapshot(store))

    moved = DataRoot(tmp_path / "moved")
    first.root.rename(moved.root)
    moved.ensure()
    copy = DataRoot(tmp_path / "copy")
    shutil.copytree(moved.root, copy.root)
    copy.ensure()
    for root in (moved, copy):
        with Store.open(root=root) as store:
            paths = {sha: item.path for sha, item in store.get_items([item.sha256 for item in items]).items()}
        assert paths == {items[0].sha256: str(root.images / "b1" / "poster.png"), items[1].sha256: str(outside),
                         items[2].sha256: "relative/poster.png"}
        with TestClient(create_app(root, "carol", scorer=None)) as client:
            assert client.get(f"/labels/image/{items[0].sha256}").status_code == 200
            assert client.get(f"/labels/image/{items[1].sha256}").status_code == 200
        assert [row.path for row in read_snapshot(root)] == [str(root.images / "b1" / "poster.png")]  # taken before the move


def test_labels_tab_in_headless_chromium(labelled_root, test_output) -> None:
    if not CHROMIUM.exists():  # the house rule of the workbench browser test: a loud skip only where Chromium cannot exist
        message = f"LABELS TAB BROWSER TEST SKIPPED: {CHROMIUM} is missing (make test runs apt-get install chromium)"
        print(message, file=sys.stderr)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    from playwright.sync_api import expect, sync_playwright

    from tests.workbench.conftest import live_server

    root, shas = labelled_root
    unlabelled = sorted(shas[2:])
    with live_server(create_app(root, "carol", scorer=None)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.set_default_timeout(20_000)
            expect.set_options(timeout=20_000)  # assertions wait as long as actions on a loaded machine
            page.goto(url)
            page.click("#tab-labels")
            expect(page.locator("#panel-labels")).to_be_visible()
            expect(page.locator("#panel-workbench")).to_be_hidden()
            expect(page.locator("#label-annotator")).to_have_value("carol")
            # the disputed item comes first, shown as an image, with its votes
            expect(page.locator("#label-sha")).to_have_text(shas[0][:12])
            expect(page.locator("#label-review")).to_be_visible()
            expect(page.locator("#label-votes")).to_have_text("no: 1 · yes: 1")
            page.wait_for_function("(document.querySelector('#label-item img') || {}).naturalWidth === 80")
            page.screenshot(path=str(test_output / "labels_tab.png"))
            page.keyboard.press("1")  # yes
            expect(page.locator("#label-sha")).to_have_text(unlabelled[0][:12])
            expect(page.locator("#label-review")).to_be_hidden()
            page.keyboard.press("s")  # skip
            expect(page.locator("#label-sha")).to_have_text(unlabelled[1][:12])
            page.keyboard.press("2")  # no
            expect(page.locator("#label-status")).to_have_text(f"labelled {unlabelled[1][:12]}: no")
            expect(page.locator("#label-sha")).to_have_text(shas[1][:12])  # the skipped one stays skipped this session
            assert _effective(root, "carol") == {shas[0]: "yes", unlabelled[1]: "no"}
            page.keyboard.press("u")  # undo the "no": the item comes back, carol has no label on it
            expect(page.locator("#label-sha")).to_have_text(unlabelled[1][:12])
            expect(page.locator("#label-status")).to_contain_text("has no label from you")
            assert _effective(root, "carol") == {shas[0]: "yes"}
            page.click("text=yes")  # the buttons work like the keys
            expect(page.locator("#label-status")).to_have_text(f"labelled {unlabelled[1][:12]}: yes")
            assert _effective(root, "carol") == {shas[0]: "yes", unlabelled[1]: "yes"}
            page.click("#tab-workbench")  # keys of the Labels tab stop when it is left
            expect(page.locator("#panel-labels")).to_be_hidden()
            page.keyboard.press("1")
            page.wait_for_timeout(300)
            assert _effective(root, "carol") == {shas[0]: "yes", unlabelled[1]: "yes"}
        finally:
            browser.close()
