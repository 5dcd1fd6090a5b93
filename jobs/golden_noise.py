"""The golden-noise job, and the sensor that runs it whenever the workbench log grows."""

import dagster as dg

from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.workbench.selections import selections_path

SELECTIONS_INTERVAL_S = 30

golden_noise_job = dg.define_asset_job(
    "golden_noise",
    selection=dg.AssetSelection.groups("golden_noise"),
    description="Rebuild human_preferences and the golden-noise analysis from the workbench selections log.",
)


@dg.sensor(
    job=golden_noise_job,
    minimum_interval_seconds=SELECTIONS_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests a golden_noise run when the workbench selections log has grown (cursor = log size in bytes).",
)
def workbench_selections_sensor(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult | dg.SkipReason:
    log = selections_path(data_root.root())
    size = log.stat().st_size if log.exists() else 0
    seen = int(context.cursor or 0)
    if size <= seen:
        return dg.SkipReason(f"selections log unchanged ({size} bytes)")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"selections-{size}")], cursor=str(size))
