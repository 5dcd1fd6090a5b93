"""A training run as MLflow sees it: params, every step's losses, artifacts, a registered version.

The orchestration layer starts the run (so it can tag it with its own run id), hands the
run id to the trainer (in this process or a subprocess), and closes it here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Param

from aesthetic_platform.atomic import write_json
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking import TrackingConfig
from aesthetic_platform.training.config import TrainConfig
from aesthetic_platform.training.data import load_pair_splits
from aesthetic_platform.training.loop import TrainResult, train
from aesthetic_platform.training.mlflow_model import log_and_register
from aesthetic_platform.training.tracking import MlflowMetricsLogger

LATEST_FILE = "latest.json"


@dataclass(frozen=True)
class TrainedModel:
    """What downstream steps (evaluation, promotion) need to find the newest model."""

    model_dir: str
    mlflow_run_id: str
    experiment_id: str
    registered_model: str
    version: str
    run_key: str

    @classmethod
    def latest(cls, root: DataRoot) -> TrainedModel:
        path = root.models / LATEST_FILE
        if not path.exists():
            raise FileNotFoundError(f"no trained model under {root.models}: materialize aesthetic_model first")
        return cls(**json.loads(path.read_text()))

    def save_as_latest(self, root: DataRoot) -> None:
        write_json(root.models / LATEST_FILE, self.__dict__)


def runs_dir(root: DataRoot) -> Path:
    return root.models / "runs"


def begin_run(tracking: TrackingConfig, config: TrainConfig, tags: dict[str, str]) -> tuple[str, str]:
    """Create the MLflow run with every knob as a param; it stays RUNNING until
    ``complete_run`` or ``fail_run``. Returns (experiment id, run id)."""
    experiment_id = tracking.activate()
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, tags=tags)
    params = {k: (json.dumps(v) if isinstance(v, (dict, list, tuple)) else v) for k, v in config.model_dump(mode="json").items()}
    client.log_batch(run.info.run_id, params=[Param(k, str(v)) for k, v in params.items()], synchronous=True)
    return experiment_id, run.info.run_id


def fail_run(tracking: TrackingConfig, run_id: str) -> None:
    """Mark a run whose training raised as FAILED, so no run is left RUNNING forever."""
    tracking.activate()
    mlflow.MlflowClient().set_terminated(run_id, status="FAILED")


def train_in_process(root: DataRoot, config: TrainConfig, run_id: str) -> TrainResult:
    splits = load_pair_splits(root.table("preference_pairs"))
    return train(config, splits.train, splits.val, runs_dir(root), logger=MlflowMetricsLogger(run_id))


def complete_run(
    root: DataRoot, tracking: TrackingConfig, experiment_id: str, run_id: str, config: TrainConfig, summary: dict[str, Any]
) -> TrainedModel:
    """Log the outcome and artifacts, register the pyfunc, and point ``latest.json`` at it."""
    model_dir = Path(summary["model_dir"])
    tracking.activate()
    with mlflow.start_run(run_id=run_id):
        mlflow.log_metrics({
            "final.steps": summary["steps"],
            "final.resumed_from_step": summary["resumed_from_step"],
            "data.padded_token_fraction": summary["padded_fraction"],
            "throughput.pairs_per_s_mean": summary["pairs_per_second"],
            **{f"final.val_accuracy.{d}": a for d, a in summary["val_accuracy"].items()},
        })
        mlflow.log_dict(config.model_dump(mode="json"), "train_config.json")
        mlflow.log_artifacts(str(model_dir), artifact_path="checkpoint")
        version = log_and_register(model_dir, list(config.dimensions), tracking.registered_model)
    trained = TrainedModel(str(model_dir), run_id, experiment_id, tracking.registered_model, version, summary["run_key"])
    trained.save_as_latest(root)
    return trained
