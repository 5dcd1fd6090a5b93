"""Asset jobs, schedules and sensors."""

import dagster as dg

from assets.partitions import prompt_batch

candidate_chain_job = dg.define_asset_job(
    "candidate_chain",
    selection=dg.AssetSelection.assets("prompts", "candidate_images"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images for one or more prompt_batch partitions.",
)

judging_chain_job = dg.define_asset_job(
    "judging_chain",
    selection=dg.AssetSelection.assets("prompts", "candidate_images", "judgments"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images -> judge verdicts for one or more prompt_batch partitions.",
)

pair_dataset_job = dg.define_asset_job(
    "pair_dataset",
    selection=dg.AssetSelection.assets("judge_calibration", "preference_pairs"),
    description="Judge calibration and the Parquet preference-pair dataset over every judged batch.",
)

ALL_JOBS = [candidate_chain_job]
ALL_JOBS += [judging_chain_job, pair_dataset_job]
ALL_SCHEDULES: list = []
ALL_SENSORS: list = []
