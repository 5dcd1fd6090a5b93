"""Asset jobs over the core chain."""

import dagster as dg

from aesthetic_platform.assets.partitions import prompt_batch

candidate_chain_job = dg.define_asset_job(
    "candidate_chain",
    selection=dg.AssetSelection.assets("prompts", "candidate_images"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images for one or more prompt_batch partitions.",
)

#: Everything that is materialized per prompt batch, in dependency order.
judging_chain_job = dg.define_asset_job(
    "judging_chain",
    selection=dg.AssetSelection.assets("prompts", "candidate_images", "content_audit", "judgments"),
    partitions_def=prompt_batch,
    description="Prompts -> candidate images -> content audit -> judge verdicts for one or more prompt_batch partitions.",
)

pair_dataset_job = dg.define_asset_job(
    "pair_dataset",
    selection=dg.AssetSelection.assets("judge_calibration", "preference_pairs"),
    description="Judge calibration and the Parquet preference-pair dataset over every judged batch.",
)

train_and_evaluate_job = dg.define_asset_job(
    "train_and_evaluate",
    selection=dg.AssetSelection.assets("preference_pairs", "aesthetic_model", "eval_report"),
    description="Rebuild the pair dataset over every judged batch, train the student, evaluate it against the champion.",
)

#: Every Monday 03:00: retrain on everything judged so far (new batches arrive through the inbox sensor).
weekly_retrain_schedule = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=train_and_evaluate_job,
    cron_schedule="0 3 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly retrain + evaluation; turn it on in the UI (Automation) for a long-running deployment.",
)
