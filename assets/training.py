"""Training and evaluation assets (seed 000 Phase 3): the checkpoint and the report as assets.

``aesthetic_model`` outputs the ``TrainedModel`` record (paths relative to the data root,
MLflow run, registered version); ``eval_report`` takes it as its input, so the model it
evaluates is the one the asset graph hands over, never a side file.
"""

import datetime as dt
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import dagster as dg
from pydantic import Field

from aesthetic_platform.assets.metadata import code_version_of, embedded_plots, root_path
from aesthetic_platform.evaluation.run import EvalConfig, evaluate, promote_if_passed, settle_promotions
from aesthetic_platform.judging.heuristic import image_file_scores
from aesthetic_platform.model.loss import RankingLossConfig
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.tracking import MLflowResource
from aesthetic_platform.tracking import (
    CHAMPION_ALIAS,
    DatasetRef,
    MlflowMetricsLogger,
    TrainedModel,
    begin_run,
    complete_run,
    fail_run,
    log_evaluation,
    update_evaluation_report,
)
from aesthetic_platform.training import TrainConfig, train_from_root
from aesthetic_platform.training.config import ImageTowerOverrides, ModelOverrides, OptimizerConfig, TextTowerOverrides
from aesthetic_platform.training.data import EVAL_SET_TABLE

GROUP = "training"


class ImageTowerSettings(dg.Config, ImageTowerOverrides):
    """Launchpad form of ``ImageTowerOverrides``."""


class TextTowerSettings(dg.Config, TextTowerOverrides):
    """Launchpad form of ``TextTowerOverrides``."""


class ModelOverrideSettings(dg.Config, ModelOverrides):
    """Launchpad form of ``ModelOverrides``."""

    image: ImageTowerSettings = Field(default_factory=ImageTowerSettings)
    text: TextTowerSettings = Field(default_factory=TextTowerSettings)


class LossSettings(dg.Config, RankingLossConfig):
    """Launchpad form of ``RankingLossConfig``."""


class OptimizerSettings(dg.Config, OptimizerConfig):
    """Launchpad form of ``OptimizerConfig``."""


class AestheticModelConfig(dg.Config, TrainConfig):
    """Every ``TrainConfig`` knob, nested as in the core, plus how to launch the training."""

    overrides: ModelOverrideSettings = Field(default_factory=ModelOverrideSettings)
    loss: LossSettings = Field(default_factory=LossSettings)
    optimizer: OptimizerSettings = Field(default_factory=OptimizerSettings)
    launcher: Literal["in_process", "subprocess"] = Field(
        default="in_process", description="'subprocess': a Dagster Pipes subprocess (torchrun when nproc_per_node > 1)."
    )
    nproc_per_node: int = Field(default=1, ge=1, description="DDP processes (subprocess launcher): gloo on CPU, NCCL on GPUs.")

    def train_config(self) -> TrainConfig:
        return TrainConfig.model_validate(self.model_dump(include=set(TrainConfig.model_fields)))


def _train_via_pipes(context, pipes_client, root: DataRoot, train_config: TrainConfig, tracking_uri: str, run_id: str, nproc: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="train-", dir=root.cache))
    try:
        (work / "config.json").write_text(train_config.model_dump_json())
        args = [
            "--config", str(work / "config.json"), "--pairs", str(root.table("preference_pairs")),
            "--runs-dir", str(root.training_runs), "--result", str(work / "result.json"),
            "--mlflow-tracking-uri", tracking_uri, "--mlflow-run-id", run_id, "--home", str(root.root),
        ]
        if root.table(EVAL_SET_TABLE).exists():
            args += ["--eval-set", str(root.table(EVAL_SET_TABLE))]
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
        command = [*launcher, "-m", "aesthetic_platform.resources.pipes_training", *args]
        pipes_client.run(command=command, context=context).get_results()
        return json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


def training_run_name(config: TrainConfig, dagster_run_id: str) -> str:
    """``train-<model>-<UTC start>-<Dagster run>``: sorts by time in the MLflow list, and no two runs share it."""
    started = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"train-{config.model}-{started}-{dagster_run_id[:8]}"


@dg.asset(
    code_version=code_version_of("aesthetic_platform.model", "aesthetic_platform.training"),
    group_name=GROUP,
    deps=["preference_pairs"],
    pool="gpu",
    kinds={"pytorch", "mlflow", "safetensors"},
    description="The student scorer trained on the train split of preference_pairs (val for early stopping).",
)
def aesthetic_model(
    context: dg.AssetExecutionContext,
    config: AestheticModelConfig,
    data_root: DataRootResource,
    mlflow_tracking: MLflowResource,
    pipes_subprocess_client: dg.PipesSubprocessClient,
) -> dg.Output[TrainedModel]:
    root = data_root.root()
    train_config = config.train_config()
    tracking = mlflow_tracking.config_for(root)
    tags = {"dagster.run_id": context.run_id, "dagster.asset": "aesthetic_model"}
    run_name = training_run_name(train_config, context.run_id)
    experiment_id, run_id = begin_run(tracking, train_config.model_dump(mode="json"), tags, run_name=run_name)
    context.log.info(f"MLflow run {run_id}: {mlflow_tracking.run_url(experiment_id, run_id)}")
    try:
        if config.launcher == "subprocess":
            summary = _train_via_pipes(
                context, pipes_subprocess_client, root, train_config, tracking.tracking_uri, run_id, config.nproc_per_node
            )
        else:
            summary = train_from_root(root, train_config, logger=MlflowMetricsLogger(run_id)).summary()
        dimensions = list(train_config.model_config_for().dimensions)
        pairs = DatasetRef.under(root, "preference_pairs", root.table("preference_pairs"), summary["run_key"])
        trained = complete_run(
            root, tracking, experiment_id, run_id, train_config.model_dump(mode="json"), dimensions, summary, dataset=pairs
        )
    except BaseException:
        fail_run(tracking, run_id)
        raise
    context.log.info(f"trained {summary['steps']} steps (resumed from {summary['resumed_from_step']}); version {trained.version}")
    lengths = summary.get("prompt_lengths", {})
    over = {split: found["over_limit"] for split, found in lengths.items() if found.get("over_limit")}
    if over:
        context.log.warning(f"prompts over the model's token limit, cut when trained on (per split): {over}")
    return dg.Output(
        trained,
        metadata={
            "mlflow_run_id": run_id,
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(experiment_id, run_id)),
            "registered_model": f"{trained.registered_model} v{trained.version}",
            "model_dir": dg.MetadataValue.path(trained.model_dir),
            "steps": summary["steps"],
            "resumed_from_step": summary["resumed_from_step"],
            "padded_token_fraction": summary["padded_fraction"],
            "pairs_per_second": summary["pairs_per_second"],
            "val_accuracy": summary["val_accuracy"],
            "prompts_over_token_limit": dg.MetadataValue.json(lengths),
        },
    )


class EvalReportConfig(dg.Config, EvalConfig):
    """Launchpad form of ``EvalConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.evaluation"),
    group_name=GROUP,
    deps=["preference_pairs", "human_preferences"],
    kinds={"mlflow", "markdown"},
    # human picks re-trigger the report when they change, but a deployment without any must not block it
    automation_condition=dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets("human_preferences")),
    check_specs=[
        dg.AssetCheckSpec(
            "no_regression_vs_champion", asset="eval_report", blocking=True,
            description="On the frozen evaluation set, no dimension (nor the same-ratio total, nor best-of-N) falls below the best "
            "recorded champion beyond its tolerance. Passing does not promote by itself: the champion folder and alias move only "
            "when no gated metric is below the best recorded at all (metadata `promotion` says why a passing model was kept back).",
        )
    ],
    description="Pairwise accuracy with 95% CIs on the frozen evaluation set and human picks, vs chance, champion and heuristic.",
)
def eval_report(
    context: dg.AssetExecutionContext,
    config: EvalReportConfig,
    aesthetic_model: TrainedModel,
    data_root: DataRootResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    root = data_root.root()
    trained = aesthetic_model
    tracking = mlflow_tracking.config_for(root)
    settled = settle_promotions(root, tracking)  # a promotion a killed run left half done: the champion is measured whole
    if settled:
        context.log.warning(settled)
    outcome = evaluate(root, trained, config, heuristic=image_file_scores)
    # every dimension, plus same_ratio.total and best_of_n (the champion gate's metrics), and the
    # student's fit on its own same-ratio training pairs (underfit or overfit, comparable across runs)
    metrics = {f"test.accuracy.{name}": value for name, value in outcome.report.model.gate_metrics().items()}
    metrics |= {f"train_fit.accuracy.{dim}": fit.accuracy for dim, fit in outcome.report.train_fit.items()}
    eval_run = log_evaluation(
        tracking, trained, outcome.report_dir, metrics,
        dataset=DatasetRef.under(root, "eval_set", outcome.eval_set.path, outcome.eval_set.digest),
    )
    measured = outcome.decision
    outcome = promote_if_passed(root, outcome, trained, tracking)
    if outcome.decision is not measured:  # decided again at promotion (another model was promoted meanwhile)
        update_evaluation_report(tracking, eval_run, outcome.report_dir)
    if outcome.promoted:
        context.log.info(f"{trained.registered_model} v{trained.version} is now '{CHAMPION_ALIAS}'")
    headline = outcome.report.headline()
    metadata = {
        "report": dg.MetadataValue.md(outcome.report.markdown),
        "headline_accuracy": headline.accuracy,
        "headline_ci": f"[{headline.ci_low:.3f}, {headline.ci_high:.3f}]",
        "eval_set": outcome.eval_set.digest,
        "test_pairs": outcome.report.test_pairs,
        "human_pairs": outcome.report.human_pairs,
        "promoted": outcome.promoted,
        "promotion": outcome.decision.promotion,
        "mlflow_eval_run": eval_run,
        "report_dir": root_path(root, outcome.report_dir),
        **embedded_plots(outcome.report.plots, root),
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(
                check_name="no_regression_vs_champion", passed=outcome.passed,
                metadata={
                    "reason": outcome.decision.summary, "reference": outcome.decision.reference,
                    "promotion": outcome.decision.promotion,
                },
            )
        ],
    )

