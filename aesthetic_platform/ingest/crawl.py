"""One crawl of one source: frontier in, validated images with provenance out.

``crawl(root, source, config)`` runs until the frontier has nothing pending (or the
run's page/image budget is spent), then writes the source's ``reference_images``
table from the frontier. Killed at any point, the next call resumes the same run.
One crawl of a source runs at a time (the scheduled one and a manual ``aesthetic crawl
run``, say): a second would resume the first's claimed URLs as its own and double the
request rate each host is promised, so it stops at once with ``CrawlBusyError``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from aesthetic_platform.atomic import held_exclusively, sha256_bytes, write_bytes
from aesthetic_platform.ingest.config import CrawlConfig, CrawlSource
from aesthetic_platform.ingest.fetch import Fetched, Fetcher, FetchError
from aesthetic_platform.ingest.frontier import Frontier, FrontierItem, Kind, State
from aesthetic_platform.ingest.sources import GalleryAdapter, UrlListSource, adapter_for
from aesthetic_platform.ingest.validate import ImageRejected, validate_image_bytes
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import REFERENCE_IMAGES, ReferenceImage

log = logging.getLogger(__name__)
ProgressFn = Callable[["CrawlReport"], None]


#: Held by the crawl of a source, beside its frontier.
LOCK_FILE = "crawl.lock"


class CrawlBusyError(RuntimeError):
    """Another process is crawling this source now."""


@dataclass
class CrawlReport:
    """What one crawl call did (this call only) and where the source stands."""

    source: str
    run_id: int = 0
    resumed: bool = False
    requeued: int = 0
    pages_fetched: int = 0
    images_fetched: int = 0
    images_stored: int = 0
    duplicates: int = 0
    skipped: Counter = field(default_factory=Counter)  # permanent: robots, too large, not an image, 404 ...
    failed: Counter = field(default_factory=Counter)  # transient: timeouts, 5xx/429 after retries ...
    requests: int = 0
    retries: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    pending_left: int = 0
    total_images: int = 0
    table: str = ""

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source, "run_id": self.run_id, "resumed": self.resumed, "pages_fetched": self.pages_fetched,
            "images_fetched": self.images_fetched, "images_stored": self.images_stored, "duplicates": self.duplicates,
            "skipped": dict(self.skipped), "failed": dict(self.failed), "requests": self.requests, "retries": self.retries,
            "bytes": self.bytes, "duration_s": round(self.duration_s, 3), "pending_left": self.pending_left,
            "total_images": self.total_images, "table": self.table,
        }


class Crawler:
    def __init__(
        self,
        root: DataRoot,
        source: CrawlSource,
        config: CrawlConfig,
        adapter: GalleryAdapter | UrlListSource | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        progress: ProgressFn | None = None,
    ) -> None:
        self.root = root
        self.source = source
        self.config = config
        self.adapter = adapter or adapter_for(source)
        self.transport = transport
        self.progress = progress
        self.report = CrawlReport(source.name)
        self._claimed: Counter[str] = Counter()

    def _kinds_open(self) -> tuple[Kind, ...]:
        kinds: list[Kind] = []
        if not self.config.max_images or self._claimed["image"] < self.config.max_images:
            kinds.append("image")
        if not self.config.max_pages or self._claimed["page"] < self.config.max_pages:
            kinds += ["detail", "list"]
        return tuple(kinds)

    async def run(self) -> CrawlReport:
        frontier_path = self.root.crawl_frontier(self.source.name)
        lock = frontier_path.with_name(LOCK_FILE)
        busy = f"source {self.source.name!r} is being crawled by another process; wait for it to finish (lock: {lock})"
        with held_exclusively(lock, lambda: CrawlBusyError(busy)):
            return await self._crawl(frontier_path)

    async def _crawl(self, frontier_path: Path) -> CrawlReport:
        started = time.monotonic()
        with Frontier(frontier_path) as frontier:
            self.frontier = frontier
            start = frontier.start_run(self.adapter.seeds(), self.config.refresh_list_pages, self.config.retry_failed)
            self.report.run_id, self.report.resumed, self.report.requeued = start.run_id, start.resumed, start.requeued
            async with Fetcher(self.config, self.transport) as fetcher:
                self.fetcher = fetcher
                active: set[asyncio.Task] = set()
                while True:
                    while len(active) < self.config.max_concurrency and (item := frontier.claim(self._kinds_open())) is not None:
                        self._claimed["image" if item.kind == "image" else "page"] += 1
                        active.add(asyncio.create_task(self._process(item)))
                    if not active:
                        break
                    done, active = await asyncio.wait(active, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                    if self.progress:
                        self.progress(self.report)
                stats = fetcher.stats
                self.report.requests, self.report.retries, self.report.bytes = stats.requests, stats.retries, stats.bytes
            frontier.finish_run(start.run_id)
            counts = frontier.state_counts()
            self.report.pending_left = sum(states.get("pending", 0) for states in counts.values())
            rows = [ReferenceImage.model_validate(r) for r in frontier.image_records()]
        path = REFERENCE_IMAGES.write(rows, self.root.table("reference_images", self.source.name))
        self.report.total_images, self.report.table = len(rows), str(path)
        self.report.duration_s = time.monotonic() - started
        return self.report

    async def _process(self, item: FrontierItem) -> None:
        try:
            if item.kind == "image":
                await self._image(item)
            else:
                await self._page(item)
        except FetchError as exc:
            state: State = "skipped" if exc.permanent else "failed"
            (self.report.skipped if exc.permanent else self.report.failed)[exc.reason] += 1
            self.frontier.settle(item.url, state, exc.reason, exc.detail)
            log.info("%s %s: %s", state, item.url, exc)
        except ImageRejected as exc:
            self.report.skipped[exc.reason] += 1
            self.frontier.settle(item.url, "skipped", exc.reason, exc.detail)
            log.info("skipped %s: %s", item.url, exc)
        except Exception as exc:  # a parser or storage bug must not lose the rest of the crawl; it is counted and kept
            self.report.failed["error"] += 1
            self.frontier.settle(item.url, "failed", "error", f"{type(exc).__name__}: {exc}")
            log.exception("failed %s", item.url)

    async def _page(self, item: FrontierItem) -> None:
        fetched = await self.fetcher.fetch(item.url, "page")
        self.report.pages_fetched += 1
        links = self.adapter.parse(item.kind, fetched.final_url, fetched.text(), item.meta)
        self.frontier.add(links.found, parent=item.url)
        if links.found:
            self.frontier.settle(item.url, "done")
        else:
            self.report.skipped[links.note or "nothing_found"] += 1
            self.frontier.settle(item.url, "done", links.note or "nothing_found")

    async def _image(self, item: FrontierItem) -> None:
        fetched = await self.fetcher.fetch(item.url, "image")
        self.report.images_fetched += 1
        info = validate_image_bytes(fetched.body, self.config.max_image_pixels, self.config.min_image_side, name=item.url)
        digest = sha256_bytes(fetched.body)
        if self.frontier.stored(digest):
            self.report.duplicates += 1
            self.frontier.settle(item.url, "done", "duplicate_content", sha256=digest)
            return
        path = self.root.reference_image(self.source.name, digest, info.suffix)
        if not path.exists():
            write_bytes(path, fetched.body)
        record = provenance(self.source.name, item, fetched, digest, path, info.format, info.width, info.height)
        self.frontier.store_image(item.url, digest, record)
        self.report.images_stored += 1


def provenance(
    source: str, item: FrontierItem, fetched: Fetched, digest: str, path: Path, fmt: str, width: int, height: int
) -> dict[str, Any]:
    meta = item.meta
    row = ReferenceImage(
        image_id="r" + digest[:15], source=source, sha256=digest, path=str(path), url=item.url, final_url=fetched.final_url,
        page_url=meta.get("page_url", "") or item.parent, title=meta.get("title", ""), tags=list(meta.get("tags", [])),
        author=meta.get("author", ""), licence=meta.get("licence", ""), licence_url=meta.get("licence_url", ""),
        format=fmt, width=width, height=height, bytes=len(fetched.body), content_type=fetched.content_type,
        etag=fetched.headers.get("etag", ""), last_modified=fetched.headers.get("last-modified", ""),
        headers_json=json.dumps(fetched.headers, sort_keys=True), fetched_at=dt.datetime.now(dt.UTC),
    )
    return row.model_dump(mode="json")


def crawl(
    root: DataRoot, source: CrawlSource, config: CrawlConfig = CrawlConfig(), progress: ProgressFn | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> CrawlReport:
    """Crawl ``source`` (resuming a killed run) and write its ``reference_images`` table."""
    return asyncio.run(Crawler(root, source, config, progress=progress, transport=transport).run())
