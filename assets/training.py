"""Training and evaluation assets (seed 000 Phase 3): the checkpoint and the report as assets."""

import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import dagster as dg
import mlflow
from pydantic import Field, create_model

from aesthetic_platform.evaluation.run import evaluate_latest, heuristic_image_scores, promote_if_passed
from aesthetic_platform.tracking import CHAMPION_ALIAS
from aesthetic_platform.training import TrainConfig
from aesthetic_platform.training.mlflow_model import set_champion
from aesthetic_platform.training.tracked import TrainedModel, begin_run, complete_run, fail_run, runs_dir, train_in_process
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.tracking import MLflowResource

GROUP = "training"


def _launchpad_field(name: str):
    """TrainConfig's field as a Dagster config field (tuples become lists for the launchpad)."""
    info = TrainConfig.model_fields[name]
    annotation = list[str] if name == "dimensions" else info.annotation
    default = list(info.default) if name == "dimensions" else info.get_default(call_default_factory=True)
    return (annotation, Field(default=default, description=info.description))


#: Every TrainConfig knob, with its description, in the launchpad; plus how to launch.
AestheticModelConfig = create_model(
    "AestheticModelConfig",
    __base__=dg.Config,
    launcher=(
        Literal["in_process", "subprocess"],
        Field(default="in_process", description="'subprocess': a Dagster Pipes subprocess (torchrun when nproc_per_node > 1)."),
    ),
    nproc_per_node=(int, Field(default=1, ge=1, description="DDP processes (subprocess launcher): gloo on CPU, NCCL on GPUs.")),
    **{name: _launchpad_field(name) for name in TrainConfig.model_fields},
)


def _train_config(config) -> TrainConfig:
    values = config.model_dump()
    values.pop("launcher")
    values.pop("nproc_per_node")
    return TrainConfig.model_validate(values)


def _train_via_pipes(context, pipes_client, root, train_config: TrainConfig, tracking_uri: str, run_id: str, nproc: int) -> dict:
    work = Path(tempfile.mkdtemp(prefix="train-", dir=root.cache))
    try:
        (work / "config.json").write_text(train_config.model_dump_json())
        args = [
            "--config", str(work / "config.json"), "--pairs", str(root.table("preference_pairs")),
            "--runs-dir", str(runs_dir(root)), "--result", str(work / "result.json"),
            "--mlflow-tracking-uri", tracking_uri, "--mlflow-run-id", run_id,
        ]
        launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}"] if nproc > 1 else [sys.executable]
        pipes_client.run(command=[*launcher, "-m", "aesthetic_platform.resources.pipes_training", *args], context=context).get_results()
        return json.loads((work / "result.json").read_text())
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dg.asset(
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
) -> dg.MaterializeResult:
    root = data_root.root()
    train_config = _train_config(config)
    tracking = mlflow_tracking.config_for(root)
    experiment_id, run_id = begin_run(tracking, train_config, {"dagster.run_id": context.run_id, "dagster.asset": "aesthetic_model"})
    context.log.info(f"MLflow run {run_id}: {mlflow_tracking.run_url(experiment_id, run_id)}")
    try:
        if config.launcher == "subprocess":
            summary = _train_via_pipes(context, pipes_subprocess_client, root, train_config, tracking.tracking_uri, run_id, config.nproc_per_node)
        else:
            summary = train_in_process(root, train_config, run_id).summary()
        trained = complete_run(root, tracking, experiment_id, run_id, train_config, summary)
    except BaseException:
        fail_run(tracking, run_id)
        raise
    context.log.info(f"trained {summary['steps']} steps (resumed from {summary['resumed_from_step']}); registered version {trained.version}")
    return dg.MaterializeResult(
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
        }
    )


class EvalReportConfig(dg.Config):
    tie_threshold: float = Field(default=0.5, ge=0, description="Teacher gaps at or below this are ties and not counted.")
    champion_tolerance: float = Field(default=0.02, ge=0, description="How much worse than the champion (on total) still passes.")


@dg.asset(
    group_name=GROUP,
    deps=[aesthetic_model, "preference_pairs"],
    kinds={"mlflow", "markdown"},
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec(
            "no_regression_vs_champion", asset="eval_report", blocking=True,
            description="The new model is not worse than the champion beyond the tolerance; only then does the champion alias move.",
        )
    ],
    description="Pairwise accuracy with 95% CIs on the teacher test split and human picks, vs chance, champion and heuristic.",
)
def eval_report(
    context: dg.AssetExecutionContext, config: EvalReportConfig, data_root: DataRootResource, mlflow_tracking: MLflowResource
) -> dg.MaterializeResult:
    root = data_root.root()
    trained = TrainedModel.latest(root)
    outcome = evaluate_latest(root, config.tie_threshold, config.champion_tolerance, heuristic=heuristic_image_scores)
    tracking = mlflow_tracking.config_for(root)
    tracking.activate()
    with mlflow.start_run(run_id=trained.mlflow_run_id):
        mlflow.log_artifacts(str(outcome.report_dir), artifact_path="eval_report")
        mlflow.log_metrics({f"test.accuracy.{d}": a.accuracy for d, a in outcome.report.model.per_dimension.items()})
    outcome = promote_if_passed(root, outcome, trained)
    if outcome.promoted:
        set_champion(trained.registered_model, trained.version)
        context.log.info(f"{trained.registered_model} v{trained.version} is now '{CHAMPION_ALIAS}'")
    headline = outcome.report.headline()
    metadata = {
        "report": dg.MetadataValue.md(outcome.report.markdown),
        "headline_accuracy": headline.accuracy,
        "headline_ci": f"[{headline.ci_low:.3f}, {headline.ci_high:.3f}]",
        "test_pairs": outcome.report.test_pairs,
        "human_pairs": outcome.report.human_pairs,
        "promoted": outcome.promoted,
        "report_dir": dg.MetadataValue.path(str(outcome.report_dir)),
        **{f"plot_{name}": dg.MetadataValue.path(str(path)) for name, path in outcome.report.plots.items()},
    }
    return dg.MaterializeResult(
        metadata=metadata,
        check_results=[
            dg.AssetCheckResult(check_name="no_regression_vs_champion", passed=outcome.passed, metadata={"reason": outcome.reason})
        ],
    )
