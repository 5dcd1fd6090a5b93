"""Data engine, second half: judge verdicts, judge calibration, the preference-pair dataset."""


import dagster as dg

from aesthetic_platform.assets.audit import content_audit
from aesthetic_platform.assets.data_engine import GROUP, candidate_images
from aesthetic_platform.assets.metadata import code_version_of, column_schema, root_path, table_metadata
from aesthetic_platform.assets.partitions import BATCH_BACKFILL_POLICY, observe_partition, prompt_batch, run_totals
from aesthetic_platform.assets.progress import batch_progress
from aesthetic_platform.atomic import write_json, write_text
from aesthetic_platform.audit import excluded_candidates
from aesthetic_platform.judging import (
    JudgingConfig,
    SplitConfig,
    build_pair_dataset,
    calibrate,
    judge_batch,
    judge_cache,
    judging_summary,
    load_judgments,
    write_pair_dataset,
)
from aesthetic_platform.judging.calibration import CalibrationConfig
from aesthetic_platform.judging.dataset import (
    missing_ratios,
    prompts_in_several_splits,
    ratio_balance,
    ratio_balance_problems,
    winners_beat_losers,
)
from aesthetic_platform.resources import DataRootResource, JudgeResource
from aesthetic_platform.resources.judge import default_kind_for_profile, judge_from_env
from aesthetic_platform.schemas import JUDGMENTS, PREFERENCE_PAIRS
from aesthetic_platform.tables import SchemaError
from aesthetic_platform.workbench.preferences import load_human_preferences

MAX_LISTED = 20  # failed pairs named in metadata and errors
#: The kind tag shows the judge this deployment's profile configures (``AESTHETIC_JUDGE``), not a guess.
JUDGE_KIND = "openai" if judge_from_env(default_kind_for_profile()).kind == "openai" else "python"


class JudgmentsConfig(dg.Config, JudgingConfig):
    """The launchpad form of ``JudgingConfig`` (same fields, same defaults)."""


def _failed_list(rows) -> list[str]:
    return [f"{r.pair_id}:{r.order}: {r.error[:200]}" for r in rows[:MAX_LISTED]]


@dg.asset(
    code_version=code_version_of("aesthetic_platform.judging"),
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[candidate_images, content_audit],
    kinds={JUDGE_KIND, "parquet"},
    check_specs=[
        dg.AssetCheckSpec("judgments_schema", asset="judgments", description="Every batch's table reads back with the Judgment schema."),
        dg.AssetCheckSpec(
            "judgments_failure_rate", asset="judgments", description="Failed judge calls stay under warn_failure_rate.",
            blocking=False,
        ),
    ],
)
def judgments(
    context: dg.AssetExecutionContext, config: JudgmentsConfig, data_root: DataRootResource, judge: JudgeResource
) -> dg.MaterializeResult:
    """One verdict per candidate pair and order: per-dimension scores, winner, reason, raw reply, provenance.
    Candidates the content audit excludes never reach the judge."""
    root = data_root.root()
    client = judge.build()
    runs = []
    for batch in context.partition_keys:

        progress = batch_progress(context.log.info, batch, "judge calls")
        run = judge_batch(root, batch, client, config, progress=progress, excluded=excluded_candidates(root, batch))
        runs.append(run)
        context.log.info(
            f"batch {batch}: {len(run.rows)} verdicts, {run.calls} judge calls, {len(run.failed)} failed, "
            f"{len(run.excluded)} images excluded by the audit -> {run.path}"
        )
        observe_partition(context, batch, judging_summary([run]))
    failed = [r for run in runs for r in run.failed]
    summary = judging_summary(runs)
    rate = float(summary["failure_rate"])
    if rate > config.max_failure_rate:
        raise dg.Failure(
            description=f"{len(failed)} of {summary['verdicts']} judge calls failed "
            f"({rate:.1%} > max_failure_rate {config.max_failure_rate:.1%}); "
            "successful verdicts are cached, a re-run only retries the failed pairs",
            metadata={"failed_pairs": _failed_list(failed), "failure_rate": rate},
        )
    schema_problems = []
    for run in runs:
        try:
            JUDGMENTS.read(run.path)
        except SchemaError as exc:
            schema_problems.append(str(exc))
    return dg.MaterializeResult(
        metadata={
            **run_totals(context, summary),
            "dagster/column_schema": column_schema(JUDGMENTS),
            "judge_model": client.model,
            "judge_prompt_version": client.prompt_version,
            "table": root_path(root, root.tables / "judgments"),
        },
        check_results=[
            dg.AssetCheckResult(check_name="judgments_schema", passed=not schema_problems, metadata={"problems": schema_problems}),
            dg.AssetCheckResult(
                check_name="judgments_failure_rate", passed=rate <= config.warn_failure_rate,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={"failure_rate": rate, "threshold": config.warn_failure_rate, "failed_pairs": _failed_list(failed)},
            ),
        ],
    )


class JudgeCalibrationConfig(dg.Config, CalibrationConfig):
    """The launchpad form of ``CalibrationConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.judging"),
    group_name=GROUP,
    deps=[judgments, "human_preferences"],
    kinds={JUDGE_KIND, "markdown"},
)
def judge_calibration(
    context: dg.AssetExecutionContext, config: JudgeCalibrationConfig, data_root: DataRootResource, judge: JudgeResource
) -> dg.MaterializeResult:
    """How trustworthy the judge is: JSON validity, swap consistency, repeat agreement, agreement with humans."""
    root = data_root.root()
    humans = load_human_preferences(root)
    report = calibrate(judge.build(), load_judgments(root), judge_cache(root), humans, config)
    write_json(root.judge_calibration.with_suffix(".json"), report.to_json())
    write_text(root.judge_calibration, report.markdown())
    context.log.info(f"calibration: {report.metrics()}")
    return dg.MaterializeResult(
        metadata={
            **{k: v for k, v in report.metrics().items() if v is not None},
            "report": dg.MetadataValue.md(report.markdown()),
            "judge_model": report.judge_model,
            "judge_prompt_version": report.prompt_version,
            "repeat_calls": report.repeat_calls,
            "human_calls": report.human_calls,
            "path": root_path(root, root.judge_calibration),
        }
    )


class PreferencePairsConfig(dg.Config, SplitConfig):
    """The launchpad form of ``SplitConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.judging.dataset", "aesthetic_platform.judging.pairs"),
    group_name=GROUP,
    deps=[judgments],
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "pairs_schema", asset="preference_pairs", description="The Parquet file reads back with the PreferencePair schema."
        ),
        dg.AssetCheckSpec("pairs_winner_beats_loser", asset="preference_pairs", description="Every winner's total is above its loser's."),
        dg.AssetCheckSpec(
            "pairs_no_prompt_in_two_splits", asset="preference_pairs", description="Each prompt hash is in exactly one split."
        ),
        dg.AssetCheckSpec(
            "pairs_all_ratios_present", asset="preference_pairs", description="All five aspect ratios appear among the pairs' images."
        ),
        dg.AssetCheckSpec(
            "pairs_ratio_balance", asset="preference_pairs",
            description="Every split has same-ratio pairs at every ratio (none under half an even share) and cross-ratio pairs.",
        ),
    ],
)
def preference_pairs(
    context: dg.AssetExecutionContext, config: PreferencePairsConfig, data_root: DataRootResource
) -> dg.MaterializeResult:
    """The Parquet training set: prompt, winner/loser ids and paths, {dim: {winner, loser}} scores, split by prompt."""
    root = data_root.root()
    dataset = build_pair_dataset(load_judgments(root), config)
    path = write_pair_dataset(root, dataset)
    try:
        frame = PREFERENCE_PAIRS.read(path)
        schema_problem = ""
    except SchemaError as exc:
        frame, schema_problem = None, str(exc)
    bad_winners = winners_beat_losers(frame) if frame is not None else []
    leaked = prompts_in_several_splits(frame) if frame is not None else []
    missing = missing_ratios(frame) if frame is not None else []
    unbalanced = ratio_balance_problems(frame) if frame is not None else ["the table did not read back"]
    context.log.info(f"{len(dataset.pairs)} pairs -> {path}; splits {dataset.split_sizes()}; skipped {dict(dataset.skipped)}")
    return dg.MaterializeResult(
        metadata={
            "pairs": len(dataset.pairs),
            "consistent_pairs": sum(p.consistent for p in dataset.pairs),
            "splits": dataset.split_sizes(),
            "pair_kinds": dataset.kind_sizes(),
            "skipped": dict(dataset.skipped),
            "prompts": len({p.prompt_hash for p in dataset.pairs}),
            **table_metadata(PREFERENCE_PAIRS, len(dataset.pairs), path, root),
        },
        check_results=[
            dg.AssetCheckResult(check_name="pairs_schema", passed=not schema_problem, metadata={"problem": schema_problem}),
            dg.AssetCheckResult(
                check_name="pairs_winner_beats_loser", passed=not bad_winners, metadata={"bad_pairs": bad_winners[:MAX_LISTED]}
            ),
            dg.AssetCheckResult(
                check_name="pairs_no_prompt_in_two_splits", passed=not leaked, metadata={"leaked_prompt_hashes": leaked[:MAX_LISTED]}
            ),
            dg.AssetCheckResult(check_name="pairs_all_ratios_present", passed=not missing, metadata={"missing": missing}),
            dg.AssetCheckResult(
                check_name="pairs_ratio_balance", passed=not unbalanced,
                metadata={"problems": unbalanced[:MAX_LISTED], "per_split": ratio_balance(frame) if frame is not None else {}},
            ),
        ],
    )
