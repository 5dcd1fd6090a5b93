"""Whole crawls of the fixture site: reasons, provenance, incremental re-runs, URL lists, validation."""

from __future__ import annotations

import io
import json
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

from aesthetic_platform.ingest import CrawlSource, Frontier, ImageRejected, validate_image_bytes
from aesthetic_platform.ingest.crawl import crawl
from aesthetic_platform.ingest.html import read_html
from aesthetic_platform.ingest.sources import GalleryAdapter
from aesthetic_platform.schemas import REFERENCE_IMAGES
from tests.fixtures.crawl_site import bomb_png, detail_page, list_page, render_png
from tests.fixtures.locks import held_by_another_process
from tests.ingest.conftest import fast_config


def test_gallery_crawl_stores_valid_images_with_provenance_and_reasons(site, data_root):
    source = CrawlSource(name="fixture", kind="gallery", start_urls=[site.start_url])
    report = crawl(data_root, source, fast_config())
    paths = site.state.paths()
    assert not [p for p in paths if p.startswith(("/private/", "/works/secret"))]  # robots.txt
    assert report.skipped == {
        "robots_disallowed": 2, "redirect_loop": 1, "too_large": 2, "not_image_content_type": 1, "not_an_image": 1,
        "too_many_pixels": 1, "no work image on the detail page": 1,
    }
    assert report.failed == {"timeout": 1}  # the slow detail page, after max_attempts
    assert report.duplicates == 1  # 'dup' serves the bytes of w0001: whichever comes second is not stored again
    stored_urls = REFERENCE_IMAGES.read(data_root.table("reference_images", "fixture"))["url"].to_list()
    assert len([u for u in stored_urls if u.endswith(("/w0001.png", "/dup.png"))]) == 1
    # 12 ordinary works + broken, ratelimited (after Retry-After), flaky (after a 503), redirected
    assert report.images_stored == 16 and report.total_images == 16
    frame = REFERENCE_IMAGES.read(data_root.table("reference_images", "fixture"))
    assert frame.height == 16 and frame["sha256"].n_unique() == 16
    for row in REFERENCE_IMAGES.rows(frame):
        assert Path(row.path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and Path(row.path).stat().st_size == row.bytes
        assert row.format == "PNG" and (row.width, row.height) == (160, 128) and row.content_type == "image/png"
        assert row.page_url.startswith(site.url("/works/")) and row.title and row.tags and row.author
        assert json.loads(row.headers_json)["content-type"] == "image/png"
    first = frame.filter(pl.col("url") == site.url("/media/w0002.png")).row(0, named=True)
    assert first["title"] == "Work w0002" and first["licence"] in ("CC BY 4.0", "CC0 1.0")
    assert first["licence_url"].startswith("https://creativecommons.org/") and first["etag"] and first["last_modified"]
    broken = frame.filter(pl.col("url") == site.url("/media/broken.png")).row(0, named=True)
    assert broken["title"] == "Broken & Bold poster" and broken["author"] == "Ann Lee"
    redirected = frame.filter(pl.col("url") == site.url("/img/redirected.png")).row(0, named=True)
    assert redirected["final_url"] == site.url("/media/redirected.png")
    # list page 2 is broken HTML and still led to its five works
    assert all(f"/works/{w}" in paths for w in site.state.work_ids()[5:10] if w != "secret-1")
    with Frontier(data_root.crawl_frontier("fixture")) as frontier:
        counts = frontier.state_counts()
        assert counts["image"]["done"] == 17 and counts["image"]["skipped"] == 7  # 16 stored + 1 duplicate
        assert counts["detail"] == {"done": 25, "skipped": 1, "failed": 1}
        assert frontier.reasons("failed") == {"timeout": 1}


def test_a_new_run_rereads_list_pages_only_and_finds_new_works(site, data_root):
    source = CrawlSource(name="fixture", kind="gallery", start_urls=[site.start_url])
    crawl(data_root, source, fast_config())
    before = len(site.state.log)
    site.state.works += 3  # three new works appear on the last list page
    report = crawl(data_root, source, fast_config())
    second = site.state.paths()[before:]
    assert not report.resumed and report.images_stored == 3
    refetched_media = [p for p in second if p.startswith("/media/")]
    assert sorted(refetched_media) == ["/media/w0013.png", "/media/w0014.png", "/media/w0015.png"]
    details = sorted(p for p in second if p.startswith("/works/"))
    assert details == ["/works/slow", "/works/slow", "/works/w0013", "/works/w0014", "/works/w0015"]  # + the failed one, retried
    assert all(site.state.counts()[p] == 1 for p in site.state.counts() if p.startswith("/media/w"))


def test_url_lists_in_text_and_csv(site, data_root, tmp_path):
    text = tmp_path / "urls.txt"
    text.write_text(
        "# reference images\n"
        f"{site.url('/media/w0001.png')}\n{site.url('/media/w0001.png')}\n\n"
        f"{site.url('/private/p1.png')}\n{site.url('/media/fake.png')}\nnot a url\n{site.url('/media/w0002.png')}\n"
    )
    report = crawl(data_root, CrawlSource(name="list-txt", kind="urls", file=str(text)), fast_config())
    assert report.images_stored == 2 and report.skipped == {"robots_disallowed": 1, "not_image_content_type": 1}
    assert site.state.counts()["/media/w0001.png"] == 1

    table = tmp_path / "urls.csv"
    table.write_text(
        "URL,title,tags,author,license\n"
        f"{site.url('/media/w0003.png')},Neon night,neon|poster,Mei,CC BY 4.0\n"
        f"{site.url('/media/w0004.png')},,,,\n"
    )
    crawl(data_root, CrawlSource(name="list-csv", kind="urls", file=str(table)), fast_config())
    frame = REFERENCE_IMAGES.read(data_root.table("reference_images", "list-csv")).sort("url")
    assert frame["title"].to_list() == ["Neon night", ""] and frame["tags"].to_list() == [["neon", "poster"], []]
    assert frame["licence"].to_list() == ["CC BY 4.0", ""] and frame["page_url"].to_list() == ["", ""]

    bad = tmp_path / "bad.csv"
    bad.write_text("link\nhttp://127.0.0.1/x.png\n")
    with pytest.raises(ValueError, match="'url' column"):
        crawl(data_root, CrawlSource(name="list-bad", kind="urls", file=str(bad)), fast_config())


def test_image_validation_refuses_bombs_and_broken_files():
    good = render_png("x", (160, 128))
    assert validate_image_bytes(good, max_pixels=100_000, min_side=32).format == "PNG"
    cases = {
        "too_many_pixels": (bomb_png(), {}),
        "not_an_image": (b"<html>hello</html>", {}),
        "decode_failed": (good[: len(good) // 2], {}),
        "too_small": (good, {"min_side": 200}),
    }
    for reason, (data, extra) in cases.items():
        with pytest.raises(ImageRejected) as caught:
            validate_image_bytes(data, max_pixels=extra.get("max_pixels", 1_000_000), min_side=extra.get("min_side", 1))
        assert caught.value.reason == reason, (reason, caught.value)
    with pytest.raises(ImageRejected, match="too_many_pixels"):
        validate_image_bytes(good, max_pixels=160 * 128 - 1)
    bmp = io.BytesIO()
    Image.new("RGB", (64, 64), (9, 9, 9)).save(bmp, "BMP")
    with pytest.raises(ImageRejected, match="unsupported_format"):
        validate_image_bytes(bmp.getvalue(), max_pixels=1_000_000)


def test_gallery_adapter_reads_the_recorded_structure():
    from tests.fixtures.crawl_site import SiteState

    state = SiteState()
    adapter = GalleryAdapter(["http://site.test/gallery?page=1"])
    links = adapter.parse("list", "http://site.test/gallery?page=2", list_page(state, 2), {})
    kinds = [(url.removeprefix("http://site.test"), kind) for url, kind, _ in links.found]
    assert kinds[-1] == ("/gallery?page=3", "list") and len([k for k in kinds if k[1] == "detail"]) == 5
    assert not [u for u, _ in kinds if "elsewhere" in u]
    detail = adapter.parse("detail", "http://site.test/works/w0001", detail_page(state, "w0001"), {})
    (url, kind, meta), = detail.found
    assert (url, kind) == ("http://site.test/media/w0001.png", "image") and meta["title"] == "Work w0001"
    assert adapter.parse("detail", "http://site.test/works/noimage", detail_page(state, "noimage"), {}).found == []
    doc = read_html("<div class=a>one <p>two</div> <span class='a b'>three")
    assert [e.text for e in doc.by_class["a"]] == ["one two", "three"]


def test_a_second_crawl_of_a_source_stops_at_once_and_a_killed_holder_leaves_no_stale_lock(site, data_root):
    """The scheduled crawl and a manual one must not both fetch: the second would resume the first's URLs and
    double the request rate. The holder here is another process, killed with SIGKILL as a crash would."""
    from aesthetic_platform.ingest.crawl import LOCK_FILE, CrawlBusyError

    source = CrawlSource(name="fixture", kind="gallery", start_urls=[site.start_url])
    with held_by_another_process(data_root.crawl_frontier("fixture").with_name(LOCK_FILE)):
        with pytest.raises(CrawlBusyError, match="source 'fixture' is being crawled by another process"):
            crawl(data_root, source, fast_config())
        assert site.state.log == []  # nothing was fetched
        other = CrawlSource(name="other", kind="gallery", start_urls=[site.start_url])
        assert crawl(data_root, other, fast_config(max_pages=2)).pages_fetched > 0  # other sources are not held up
    assert crawl(data_root, source, fast_config()).images_stored == 16
