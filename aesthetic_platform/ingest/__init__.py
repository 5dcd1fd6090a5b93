"""Reference-image ingest: a polite, resumable crawler, one gallery adapter and URL-list ingest.

No Dagster here: ``assets/ingest.py`` wraps :func:`crawl` as the ``reference_images``
asset (partitioned by crawl source), and ``aesthetic crawl ...`` runs it from the
command line.
"""

from aesthetic_platform.lazy import lazy_exports

_EXPORTS = {
    "CrawlConfig": "config",
    "CrawlReport": "crawl",
    "CrawlSource": "config",
    "Crawler": "crawl",
    "FetchError": "fetch",
    "Fetcher": "fetch",
    "Frontier": "frontier",
    "GalleryAdapter": "sources",
    "GallerySelectors": "sources",
    "HostLimiter": "fetch",
    "ImageRejected": "validate",
    "UrlListSource": "sources",
    "adapter_for": "sources",
    "get_source": "config",
    "load_sources": "config",
    "parse_retry_after": "fetch",
    "register_source": "config",
    "validate_image_bytes": "validate",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)  # the crawl function itself: aesthetic_platform.ingest.crawl.crawl (same name as its module)
