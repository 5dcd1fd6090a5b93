"""Sensor: a prompt file dropped into the inbox becomes a new batch and runs its chain."""

import dagster as dg

from aesthetic_platform.prompts.inbox import drain_inbox
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.jobs.chains import judging_chain_job
from aesthetic_platform.resources import DataRootResource

INBOX_INTERVAL_S = 30


@dg.sensor(
    job=judging_chain_job,
    minimum_interval_seconds=INBOX_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Turns each CSV/JSON prompt file in $AESTHETIC_HOME/inbox into a prompt_batch partition and materializes it.",
)
def prompt_inbox_sensor(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult | dg.SkipReason:
    accepted, rejected = drain_inbox(data_root.root())
    for bad in rejected:
        context.log.warning(f"rejected prompt file {bad.path}: {bad.error}")
    if not accepted:
        return dg.SkipReason(f"inbox empty ({len(rejected)} file(s) rejected)" if rejected else "inbox empty")
    return dg.SensorResult(
        dynamic_partitions_requests=[prompt_batch.build_add_request([f.batch for f in accepted])],
        run_requests=[
            dg.RunRequest(
                run_key=f.batch,
                partition_key=f.batch,
                run_config={"ops": {"prompts": {"config": {"source": "file", "file_path": str(f.upload_path)}}}},
                tags={"aesthetic/source": "inbox"},
            )
            for f in accepted
        ],
    )
