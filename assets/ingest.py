"""Reference images: crawl sources (gallery sites, URL lists) into validated images with provenance."""

from pathlib import Path

import dagster as dg

from aesthetic_platform.assets.metadata import code_version_of, table_metadata
from aesthetic_platform.ingest import CrawlConfig, get_source
from aesthetic_platform.ingest.crawl import crawl
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.schemas import REFERENCE_IMAGES

GROUP = "ingest"

#: One partition per registered crawl source (``aesthetic crawl add``); the incremental-crawl
#: schedule adds the partitions of newly registered sources, the UI can add them too.
CRAWL_SOURCE = "crawl_source"
crawl_source = dg.DynamicPartitionsDefinition(name=CRAWL_SOURCE)


class ReferenceImagesConfig(dg.Config, CrawlConfig):
    """``CrawlConfig`` on the launchpad (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.ingest"), partitions_def=crawl_source, group_name=GROUP, kinds={"sqlite", "parquet"}
)
def reference_images(
    context: dg.AssetExecutionContext, config: ReferenceImagesConfig, data_root: DataRootResource
) -> dg.MaterializeResult:
    """Crawl one source politely (robots.txt, per-host rate, retries), resuming a killed crawl; images validated and
    stored once per sha256 with URL, fetch time, headers, title, tags, author and licence."""
    root = data_root.root()
    name = context.partition_key
    try:
        source = get_source(root, name)
    except KeyError as exc:
        raise dg.Failure(description=str(exc.args[0])) from None
    report = crawl(root, source, CrawlConfig.model_validate(config.model_dump()))
    context.log.info(f"{name}: {report.summary()}")
    return dg.MaterializeResult(
        metadata={
            "fetched": report.pages_fetched + report.images_fetched,
            "pages_fetched": report.pages_fetched,
            "images_fetched": report.images_fetched,
            "images_stored": report.images_stored,
            "duplicates": report.duplicates,
            "skipped": dict(report.skipped),
            "failed": dict(report.failed),
            "requests": report.requests,
            "bytes": report.bytes,
            "duration_s": report.duration_s,
            "resumed": report.resumed,
            "pending_left": report.pending_left,
            "total_images": report.total_images,
            "source_kind": source.kind,
            **table_metadata(REFERENCE_IMAGES, report.total_images, Path(report.table), root),
        }
    )
