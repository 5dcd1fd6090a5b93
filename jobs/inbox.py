"""Sensor: a prompt file dropped into the inbox becomes a new batch and runs its chain.

Every pass validates the new files (a bad one is rejected on its own) and asks for a run
of every accepted file still pending, with the batch as run key so Dagster creates it
once. A pending file leaves the inbox only after its run is seen in the instance, so a
crash between accepting a file and creating its run loses nothing.
"""

import dagster as dg
from dagster._core.storage.tags import RUN_KEY_TAG  # the tag on runs created from a RunRequest's run_key; no public name

from aesthetic_platform.assets.data_engine import PromptsConfig
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.jobs.chains import judging_chain_job
from aesthetic_platform.paths import PROMPT_BATCH
from aesthetic_platform.prompts.inbox import PendingUpload, drain_inbox, mark_requested, pending_uploads
from aesthetic_platform.resources import DataRootResource

INBOX_INTERVAL_S = 30
SOURCE_TAG = "aesthetic/source"


def _run_exists(instance: dg.DagsterInstance, batch: str) -> bool:
    tags = {RUN_KEY_TAG: batch, SOURCE_TAG: "inbox"}
    return instance.get_runs_count(dg.RunsFilter(tags=tags)) > 0


def _still_waiting(context: dg.SensorEvaluationContext, uploads: list[PendingUpload]) -> list[PendingUpload]:
    """Pending uploads without a run yet; those whose run exists leave the inbox now."""
    waiting = []
    for upload in uploads:
        try:
            if _run_exists(context.instance, upload.batch):
                mark_requested(upload)
                continue
        except Exception as exc:  # noqa: BLE001 - one stuck file must not stop the others' runs
            context.log.warning(f"pending prompt file {upload.pending_path}: {exc}")
        waiting.append(upload)
    return waiting


@dg.sensor(
    job=judging_chain_job,
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns each CSV/JSON prompt file in $AESTHETIC_HOME/inbox into a prompt_batch partition and materializes it.",
)
def prompt_inbox_sensor(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult | dg.SkipReason:
    root = data_root.root()
    _, rejected = drain_inbox(root)
    for bad in rejected:
        context.log.warning(f"rejected prompt file {bad.path}: {bad.error}")
    waiting = _still_waiting(context, pending_uploads(root))
    if not waiting:
        return dg.SkipReason(f"inbox empty ({len(rejected)} file(s) rejected)" if rejected else "inbox empty")
    new_batches = [f.batch for f in waiting if not context.instance.has_dynamic_partition(PROMPT_BATCH, f.batch)]
    return dg.SensorResult(
        dynamic_partitions_requests=[prompt_batch.build_add_request(new_batches)] if new_batches else [],
        run_requests=[
            dg.RunRequest(
                run_key=f.batch,
                partition_key=f.batch,
                run_config=dg.RunConfig(ops={"prompts": PromptsConfig(source="file", file_path=str(f.upload_path))}),
                tags={SOURCE_TAG: "inbox"},
            )
            for f in waiting
        ],
    )
