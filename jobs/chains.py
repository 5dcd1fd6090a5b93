"""Asset jobs over the core chain."""

import dagster as dg

from assets.partitions import prompt_batch

candidate_chain_job = dg.define_asset_job(
    "candidate_chain",
    selection=dg.AssetSelection.assets("prompts", "candidate_images"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images for one or more prompt_batch partitions.",
)

#: Everything that is materialized per prompt batch, in dependency order.
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
