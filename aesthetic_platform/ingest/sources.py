"""Site adapters: what to fetch first, and what a fetched page leads to.

``GalleryAdapter`` reads a gallery-style site with this recorded page structure
(the structure of ``tests/fixtures/crawl_site.py``; the selectors are fields, so a
site with other class names needs a new ``GallerySelectors``, not new code)::

    list page    /gallery?page=N
        <a class="work-link" href="/works/ID">            one per work
        <a rel="next" href="/gallery?page=N+1">           or <link rel="next">
    detail page  /works/ID
        <h1 class="work-title">Title</h1>                 else og:title, else <title>
        <a class="author" rel="author">Name</a>
        <a class="tag">poster</a> ...
        <a rel="license" href="https://creativecommons.org/...">CC BY 4.0</a>
        <img class="work-image" src="/media/ID.png">     else og:image

Only list and detail pages on the start URL's host are followed; the image itself may
live on any host (a CDN), whose robots.txt is then obeyed too.

``UrlListSource`` turns a text file (one URL a line, ``#`` comments) or a CSV file
(column ``url``; optional ``title``, ``tags`` separated by ``|``, ``author``,
``licence`` / ``license``, ``licence_url``, ``page_url``) into image URLs.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urldefrag, urljoin, urlsplit

from aesthetic_platform.ingest.config import CrawlSource
from aesthetic_platform.ingest.frontier import Kind
from aesthetic_platform.ingest.html import Document, read_html

Seed = tuple[str, Kind, dict[str, Any]]


@dataclass(frozen=True)
class PageLinks:
    """What a fetched page leads to: new URLs with their kind and metadata."""

    found: list[Seed] = field(default_factory=list)
    note: str = ""  # why a page led nowhere (e.g. no image on a detail page)


class SiteAdapter(Protocol):
    def seeds(self) -> list[Seed]: ...

    def parse(self, kind: Kind, url: str, html: str, meta: dict[str, Any]) -> PageLinks: ...


def clean_url(base: str, href: str) -> str | None:
    """Absolute http(s) URL without fragment, or None."""
    href = href.strip()
    if not href or href.startswith(("javascript:", "mailto:", "data:")):
        return None
    url = urldefrag(urljoin(base, href))[0]
    return url if urlsplit(url).scheme in ("http", "https") else None


@dataclass(frozen=True)
class GallerySelectors:
    item_link_class: str = "work-link"
    next_rel: str = "next"
    title_class: str = "work-title"
    author_class: str = "author"
    tag_class: str = "tag"
    licence_rel: str = "license"
    image_class: str = "work-image"


class GalleryAdapter:
    """List pages -> detail pages -> one image with title, tags, author and licence."""

    def __init__(self, start_urls: list[str], selectors: GallerySelectors = GallerySelectors()) -> None:
        self.start_urls = start_urls
        self.selectors = selectors
        self.hosts = {urlsplit(u).netloc.lower() for u in start_urls}

    def seeds(self) -> list[Seed]:
        return [(url, "list", {}) for url in self.start_urls]

    def _same_site(self, url: str) -> bool:
        return urlsplit(url).netloc.lower() in self.hosts

    def parse(self, kind: Kind, url: str, html: str, meta: dict[str, Any]) -> PageLinks:
        doc = read_html(html)
        return self._list(url, doc) if kind == "list" else self._detail(url, doc)

    def _list(self, url: str, doc: Document) -> PageLinks:
        s = self.selectors
        found: list[Seed] = []
        for link in doc.links:
            target = clean_url(url, link.attrs.get("href", ""))
            if target is None or not self._same_site(target):
                continue
            if s.item_link_class in link.classes:
                found.append((target, "detail", {}))
            elif s.next_rel in link.rels:
                found.append((target, "list", {}))
        return PageLinks(found, "" if found else "no work links or next page on the list page")

    def _detail(self, url: str, doc: Document) -> PageLinks:
        s = self.selectors
        image = next((i for i in doc.images if s.image_class in i.classes and i.attrs.get("src")), None)
        src = image.attrs["src"] if image is not None else doc.meta.get("og:image", "")
        target = clean_url(url, src) if src else None
        if target is None:
            return PageLinks([], "no work image on the detail page")
        licence = next((link for link in doc.links if s.licence_rel in link.rels), None)
        author = next((e.text for e in doc.by_class.get(s.author_class, []) if e.text), "")
        if not author:
            author = next((link.text for link in doc.links if "author" in link.rels and link.text), "")
        tags = list(dict.fromkeys(e.text for e in doc.by_class.get(s.tag_class, []) if e.text))
        meta = {
            "page_url": url,
            "title": doc.first_text(s.title_class) or doc.meta.get("og:title", "") or doc.title,
            "tags": tags,
            "author": author,
            "licence": (licence.text or licence.attrs.get("href", "")) if licence is not None else "",
            "licence_url": (clean_url(url, licence.attrs.get("href", "")) or "") if licence is not None else "",
        }
        return PageLinks([(target, "image", meta)])


class UrlListSource:
    """Image URLs from a .txt or .csv file; CSV columns add title, tags, author and licence."""

    def __init__(self, file: str | Path) -> None:
        self.file = Path(file)

    def seeds(self) -> list[Seed]:
        if not self.file.exists():
            raise FileNotFoundError(f"URL list {self.file} does not exist")
        text = self.file.read_text(encoding="utf-8-sig")
        if self.file.suffix.lower() == ".csv":
            return self._csv(text)
        seeds: list[Seed] = []
        for line in text.splitlines():
            line = line.strip()
            url = clean_url(line, line) if line and not line.startswith("#") else None
            if url:
                seeds.append((url, "image", {}))
        return seeds

    def _csv(self, text: str) -> list[Seed]:
        reader = csv.DictReader(text.splitlines())
        fields = {f.strip().lower(): f for f in reader.fieldnames or []}
        if "url" not in fields:
            raise ValueError(f"{self.file}: a CSV URL list needs a 'url' column (found {sorted(fields)})")

        def column(row: dict[str, str], *names: str) -> str:
            return next(((row.get(fields[n]) or "").strip() for n in names if n in fields), "")

        seeds: list[Seed] = []
        for row in reader:
            url = clean_url(column(row, "url"), column(row, "url"))
            if url is None:
                continue
            meta = {
                "title": column(row, "title"),
                "tags": [t.strip() for t in column(row, "tags").split("|") if t.strip()],
                "author": column(row, "author"),
                "licence": column(row, "licence", "license"),
                "licence_url": column(row, "licence_url", "license_url"),
                "page_url": column(row, "page_url"),
            }
            seeds.append((url, "image", meta))
        return seeds

    def parse(self, kind: Kind, url: str, html: str, meta: dict[str, Any]) -> PageLinks:
        raise ValueError(f"a URL list has no pages to parse ({url})")


def adapter_for(source: CrawlSource) -> GalleryAdapter | UrlListSource:
    if source.kind == "gallery":
        return GalleryAdapter(source.start_urls)
    return UrlListSource(source.file)
