"""Reference-image ingest: a polite, resumable crawler, one gallery adapter and URL-list ingest.

No Dagster here: ``assets/ingest.py`` wraps :func:`crawl` as the ``reference_images``
asset (partitioned by crawl source), and ``aesthetic crawl ...`` runs it from the
command line.
"""

from aesthetic_platform.ingest.config import (
    CrawlConfig,
    CrawlSource,
    get_source,
    load_sources,
    register_source,
)
from aesthetic_platform.ingest.crawl import Crawler, CrawlReport, crawl
from aesthetic_platform.ingest.fetch import Fetcher, FetchError, HostLimiter, parse_retry_after
from aesthetic_platform.ingest.frontier import Frontier
from aesthetic_platform.ingest.sources import GalleryAdapter, GallerySelectors, UrlListSource, adapter_for
from aesthetic_platform.ingest.validate import ImageRejected, validate_image_bytes

__all__ = [
    "CrawlConfig",
    "CrawlReport",
    "CrawlSource",
    "Crawler",
    "FetchError",
    "Fetcher",
    "Frontier",
    "GalleryAdapter",
    "GallerySelectors",
    "HostLimiter",
    "ImageRejected",
    "UrlListSource",
    "adapter_for",
    "crawl",
    "get_source",
    "load_sources",
    "parse_retry_after",
    "register_source",
    "validate_image_bytes",
]
