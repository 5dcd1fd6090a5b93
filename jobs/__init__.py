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
