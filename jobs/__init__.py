"""Asset jobs, schedules and sensors."""

import dagster as dg

from assets.partitions import prompt_batch

candidate_chain_job = dg.define_asset_job(
    "candidate_chain",
    selection=dg.AssetSelection.groups("data_engine"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images for one or more prompt_batch partitions.",
)

ALL_JOBS = [candidate_chain_job]
ALL_SCHEDULES: list = []
ALL_SENSORS: list = []

from jobs.golden_noise import golden_noise_job, workbench_selections_sensor  # noqa: E402

ALL_JOBS.append(golden_noise_job)
ALL_SENSORS.append(workbench_selections_sensor)
