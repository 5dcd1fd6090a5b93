"""The reference_images asset (one partition per crawl source) and the incremental-crawl schedule."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from aesthetic_platform.assets.ingest import crawl_source, reference_images
from aesthetic_platform.assets.metadata import code_version_of
from aesthetic_platform.ingest import CrawlSource, register_source
from aesthetic_platform.jobs.ingest import incremental_crawl_schedule
from aesthetic_platform.resources import DataRootResource
from tests.ingest.conftest import fast_config


def test_reference_images_asset_crawls_its_source_and_reports(site, data_root):
    assert reference_images.code_versions_by_key[reference_images.key] == code_version_of("aesthetic_platform.ingest")
    register_source(data_root, CrawlSource(name="fixture", kind="gallery", start_urls=[site.start_url]))
    config = fast_config().model_dump()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(crawl_source.name, ["fixture", "unregistered"])
        result = dg.materialize(
            [reference_images], partition_key="fixture", instance=instance,
            resources={"data_root": DataRootResource(home=str(data_root.root))},
            run_config={"ops": {"reference_images": {"config": config}}},
        )
        metadata = result.asset_materializations_for_node("reference_images")[0].metadata
        assert metadata["images_stored"].value == 16 and metadata["fetched"].value == 31 + 19
        assert metadata["skipped"].value["robots_disallowed"] == 2 and metadata["failed"].value == {"timeout": 1}
        assert metadata["bytes"].value > 0 and metadata["duration_s"].value > 0
        assert metadata["dagster/row_count"].value == metadata["total_images"].value == 16
        missing = dg.materialize(
            [reference_images], partition_key="unregistered", instance=instance, raise_on_error=False,
            resources={"data_root": DataRootResource(home=str(data_root.root))},
        )
        assert not missing.success


def test_incremental_crawl_schedule_is_off_and_requests_every_source(data_root, tmp_path):
    assert incremental_crawl_schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    with dg.instance_for_test() as instance:
        resources = {"data_root": DataRootResource(home=str(data_root.root))}
        when = dt.datetime(2026, 11, 30, 4, tzinfo=dt.UTC)
        context = dg.build_schedule_context(instance, scheduled_execution_time=when, resources=resources)
        empty = incremental_crawl_schedule(context)
        assert isinstance(empty, dg.SkipReason)
        urls = tmp_path / "urls.txt"
        urls.write_text("http://127.0.0.1:9/a.png\n")
        register_source(data_root, CrawlSource(name="site-a", kind="gallery", start_urls=["http://127.0.0.1:9/gallery"]))
        register_source(data_root, CrawlSource(name="list-b", kind="urls", file=str(urls)))
        context = dg.build_schedule_context(instance, scheduled_execution_time=when, resources=resources)
        requests = incremental_crawl_schedule(context)
        assert sorted(r.partition_key for r in requests) == ["list-b", "site-a"]
        assert set(instance.get_dynamic_partitions(crawl_source.name)) == {"list-b", "site-a"}
