"""Crawl settings and the registry of crawl sources.

``CrawlConfig`` is the one config of the crawler: the core reads it, the CLI fills it
from flags, and the Dagster asset's launchpad config subclasses it without restating
a default. A *source* is a named thing to crawl (a gallery site or a URL list); the
registry is one JSON file under the data root, and each source's name is also its
``crawl_source`` partition key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aesthetic_platform.atomic import write_json
from aesthetic_platform.paths import DataRoot, check_key

DEFAULT_USER_AGENT = "aesthetic-platform-crawler/0.1 (reference images; robots.txt obeyed)"
DEFAULT_IMAGE_TYPES = ["image/jpeg", "image/png", "image/webp", "image/gif"]


class CrawlConfig(BaseModel):
    """How politely and how far to crawl. Every request of a crawl follows these limits."""

    user_agent: str = Field(
        default=DEFAULT_USER_AGENT, description="User-Agent header; also the name robots.txt groups are matched against."
    )
    proxy: str = Field(
        default="", description="HTTP(S) proxy URL for every request, e.g. http://127.0.0.1:3128; '' for none (proxy env vars are ignored)."
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Seconds to open a connection.")
    read_timeout_s: float = Field(default=20.0, gt=0, description="Seconds to wait for any byte of a response.")
    request_deadline_s: float = Field(default=60.0, gt=0, description="Seconds for one whole request, body included (stops slow trickles).")
    requests_per_second_per_host: float = Field(
        default=1.0, gt=0, description="Request starts per second per host (robots.txt Crawl-delay can only slow it down)."
    )
    max_concurrency_per_host: int = Field(default=2, ge=1, description="Requests in flight per host at once.")
    max_concurrency: int = Field(default=8, ge=1, description="URLs processed at once over all hosts.")
    max_attempts: int = Field(default=4, ge=1, description="Attempts per request; 429, 5xx, timeouts and lost connections are retried.")
    backoff_initial_s: float = Field(
        default=0.5, ge=0, description="First backoff between attempts (doubles, with jitter) when no Retry-After is given."
    )
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest backoff between attempts.")
    retry_after_max_s: float = Field(
        default=120.0, ge=0, description="A longer Retry-After ends the URL's attempts in this run (left failed; next run retries)."
    )
    max_redirects: int = Field(default=5, ge=0, description="Redirect hops per URL; loops are stopped at the first repeated URL.")
    max_page_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description="Largest HTML page read; larger responses are dropped mid-stream."
    )
    max_image_bytes: int = Field(
        default=20 * 1024 * 1024, gt=0, description="Largest image file read; larger responses are dropped mid-stream."
    )
    max_image_pixels: int = Field(
        default=40_000_000, gt=0, description="Largest width x height accepted (decompression bombs are refused before decoding)."
    )
    min_image_side: int = Field(default=128, ge=1, description="Images with a shorter side are skipped.")
    image_types: list[str] = Field(
        default=list(DEFAULT_IMAGE_TYPES),
        description="Content types accepted for images; application/octet-stream or none is accepted too and decided by decoding.",
    )
    max_pages: int = Field(default=0, ge=0, description="HTML pages fetched per run; 0: no limit.")
    max_images: int = Field(default=0, ge=0, description="Images fetched per run; 0: no limit.")
    refresh_list_pages: bool = Field(
        default=True, description="A new run after a finished one re-reads list pages (new works); details, images never twice."
    )
    retry_failed: bool = Field(
        default=True, description="A new run retries URLs that failed transiently (timeouts, 5xx, 429) in earlier runs."
    )


SourceKind = Literal["gallery", "urls"]


class CrawlSource(BaseModel):
    """A named crawl source: a gallery site (list pages -> detail pages -> image) or a URL-list file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Source name; also the crawl_source partition key.")
    kind: SourceKind
    start_urls: list[str] = Field(default_factory=list, description="gallery: the first list page(s).")
    file: str = Field(
        default="", description="urls: a .txt (one URL a line) or .csv (column 'url', optional title, tags, author, licence)."
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_key("crawl source", value)

    def model_post_init(self, _context: object) -> None:
        if self.kind == "gallery" and not self.start_urls:
            raise ValueError(f"gallery source {self.name!r} needs at least one start URL")
        if self.kind == "urls" and not self.file:
            raise ValueError(f"URL-list source {self.name!r} needs a file")


def load_sources(root: DataRoot) -> dict[str, CrawlSource]:
    """The registered sources by name ({} when none is registered)."""
    path = root.crawl_sources
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {name: CrawlSource.model_validate(spec) for name, spec in raw.get("sources", {}).items()}


def register_source(root: DataRoot, source: CrawlSource) -> Path:
    """Add or replace a source in the registry (atomic write)."""
    sources = load_sources(root)
    if source.kind == "urls":
        source = source.model_copy(update={"file": str(Path(source.file).expanduser().resolve())})
    sources[source.name] = source
    return write_json(root.crawl_sources, {"sources": {n: s.model_dump() for n, s in sorted(sources.items())}})


def get_source(root: DataRoot, name: str) -> CrawlSource:
    sources = load_sources(root)
    if name not in sources:
        known = ", ".join(sorted(sources)) or "none"
        raise KeyError(f"no crawl source {name!r} in {root.crawl_sources} (registered: {known}); add it with `aesthetic crawl add`")
    return sources[name]
