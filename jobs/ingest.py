"""Incremental crawls of the registered reference-image sources."""

import dagster as dg

from aesthetic_platform.assets.ingest import CRAWL_SOURCE, crawl_source
from aesthetic_platform.ingest import load_sources
from aesthetic_platform.resources import DataRootResource

crawl_job = dg.define_asset_job(
    "crawl_reference_images",
    selection=dg.AssetSelection.assets("reference_images"),
    partitions_def=crawl_source,
    description="Crawl one or more crawl_source partitions into reference_images.",
)


@dg.schedule(
    job=crawl_job,
    cron_schedule="0 4 * * *",
    name="incremental_crawl",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Daily 04:00: every registered source is crawled again; only list pages are re-read, so only new works are "
    "fetched. Off until turned on in the UI (Automation).",
)
def incremental_crawl_schedule(context: dg.ScheduleEvaluationContext, data_root: DataRootResource):
    sources = sorted(load_sources(data_root.root()))
    known = set(context.instance.get_dynamic_partitions(CRAWL_SOURCE))
    new = [name for name in sources if name not in known]
    if new:
        context.instance.add_dynamic_partitions(CRAWL_SOURCE, new)
    tick = context.scheduled_execution_time.strftime("%Y%m%dT%H%M") if context.scheduled_execution_time else "manual"
    if not sources:
        return dg.SkipReason("no crawl source is registered (aesthetic crawl add NAME --gallery URL | --urls FILE)")
    return [dg.RunRequest(run_key=f"{name}-{tick}", partition_key=name) for name in sources]
