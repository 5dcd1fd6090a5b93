"""A training run as MLflow sees it: params, every step's losses, artifacts, a registered version.

The orchestration layer starts the run (so it can tag it with its own run id), hands the
run id to the trainer (in this process or a subprocess), and closes it here. Evaluation
logs into a run of its own, nested under the training run, so the training run's
duration is the training's.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking.pyfunc import DATA_URI_PREFIX, log_and_register
from aesthetic_platform.tracking.store import TrackingConfig


@dataclass(frozen=True)
class TrainedModel:
    """What downstream steps (evaluation, promotion) need about a trained model.

    ``model_dir`` is relative to the data root, so the record stays valid when the root moves."""

    model_dir: str
    mlflow_run_id: str
    experiment_id: str
    registered_model: str
    version: str
    run_key: str

    def path(self, root: DataRoot) -> Path:
        return root.resolve(self.model_dir)

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class DatasetRef:
    """A pair table a run used, logged as an MLflow dataset input (name, source, digest).

    ``source`` is what MLflow records as the dataset's location: the table's path relative to
    the data root (``tables/preference_pairs.parquet``), which stays true after the root moves."""

    name: str
    path: Path
    digest: str
    source: str = ""

    @classmethod
    def under(cls, root: DataRoot, name: str, path: Path, digest: str) -> DatasetRef:
        return cls(name, path, digest, root.relative(path))


def _log_dataset(dataset: DatasetRef, context: str) -> None:
    import polars as pl
    from mlflow.data.pandas_dataset import from_pandas  # what mlflow.data.from_pandas is, under a name type checkers see

    columns = ["pair_id", "prompt_hash", "winner_id", "loser_id", "split"]
    frame = pl.read_parquet(dataset.path, columns=columns).to_pandas()
    source = from_pandas(frame, source=dataset.source or str(dataset.path), name=dataset.name, digest=dataset.digest)
    mlflow.log_input(source, context=context)


EXAMPLE_SIDE = 96


def _example(root: DataRoot, dataset: DatasetRef | None) -> tuple[str, str] | None:
    """One (image, prompt) of the training pairs for the model's input example, the image inlined as a
    small PNG data URI: a stored path would only resolve inside this data root, at its current place."""
    if dataset is None:
        return None
    import base64
    import io

    import polars as pl

    from aesthetic_platform.images import load_image

    first = pl.read_parquet(dataset.path, columns=["image_winner_path", "prompt"], n_rows=1)
    if not first.height:
        return None
    image = load_image(root.resolve(first["image_winner_path"][0]), fit_pixels=EXAMPLE_SIDE * EXAMPLE_SIDE)
    image.thumbnail((EXAMPLE_SIDE, EXAMPLE_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return DATA_URI_PREFIX + base64.b64encode(buffer.getvalue()).decode("ascii"), first["prompt"][0]


def version_description(run_id: str, summary: dict[str, Any], dataset: DatasetRef | None) -> str:
    """What a registered version was trained from, readable in the registry without opening the run."""
    accuracy = ", ".join(
        f"{dim} {value:.1%}" if isinstance(value, (int, float)) and not math.isnan(value) else f"{dim} n/a"
        for dim, value in summary["val_accuracy"].items()
    )
    data = f"dataset {dataset.name} ({dataset.source or dataset.path}) digest {dataset.digest}" if dataset else "dataset not recorded"
    return f"Training run {run_id}, run key {summary['run_key']}; {data}; validation accuracy: {accuracy or 'n/a'}."


class MlflowMetricsLogger:
    """Logs every step's metrics into an existing MLflow run (rank 0 only), batched to keep SQLite writes cheap."""

    def __init__(self, run_id: str, client: MlflowClient | None = None, tracking_uri: str | None = None) -> None:
        self.run_id = run_id
        self.client = client or MlflowClient(tracking_uri=tracking_uri)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key=name.replace("/", "."), value=float(value), timestamp=now, step=step) for name, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)


def _params(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> flat MLflow params (``loss.tie_threshold``), lists as JSON."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(_params(value, f"{name}."))
        else:
            flat[name] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else str(value)
    return flat


def begin_run(tracking: TrackingConfig, config: dict[str, Any], tags: dict[str, str], run_name: str | None = None) -> tuple[str, str]:
    """Create the MLflow run with every knob as a param; it stays RUNNING until
    ``complete_run`` or ``fail_run``. Returns (experiment id, run id)."""
    experiment_id = tracking.activate()
    client = mlflow.MlflowClient()
    commit = source_commit()
    source_tags = {"mlflow.source.git.commit": commit} if commit else {}
    run = client.create_run(experiment_id, tags={**source_tags, **tags}, run_name=run_name)
    params = [Param(k, v) for k, v in _params(config).items()]
    client.log_batch(run.info.run_id, params=params, synchronous=True)
    return experiment_id, run.info.run_id


def source_commit() -> str | None:
    """The git commit of the installed code when it runs from a checkout (None otherwise)."""
    package = Path(__file__).resolve().parents[2]
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def fail_run(tracking: TrackingConfig, run_id: str) -> None:
    """Mark a run whose training raised as FAILED, so no run is left RUNNING forever."""
    tracking.activate()
    mlflow.MlflowClient().set_terminated(run_id, status="FAILED")


def complete_run(
    root: DataRoot, tracking: TrackingConfig, experiment_id: str, run_id: str, config: dict[str, Any],
    dimensions: list[str], summary: dict[str, Any], dataset: DatasetRef | None = None,
) -> TrainedModel:
    """Log the outcome and artifacts, register the pyfunc, end the run; returns the hand-off record."""
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
        mlflow.log_dict(config, "train_config.json")
        if dataset is not None:
            _log_dataset(dataset, context="training")
        mlflow.log_artifacts(str(model_dir), artifact_path="checkpoint")
        version = log_and_register(
            model_dir, dimensions, tracking.registered_model, _example(root, dataset),
            description=version_description(run_id, summary, dataset),
        )
    return TrainedModel(root.relative(model_dir), run_id, experiment_id, tracking.registered_model, version, summary["run_key"])


def log_evaluation(
    tracking: TrackingConfig, trained: TrainedModel, report_dir: Path, metrics: dict[str, float], dataset: DatasetRef | None = None
) -> str:
    """Evaluation in its own run, nested under the training run; returns its run id."""
    experiment_id = tracking.activate()
    client = mlflow.MlflowClient()
    run = client.create_run(
        experiment_id, run_name=f"eval-v{trained.version}",
        tags={"mlflow.parentRunId": trained.mlflow_run_id, "aesthetic.kind": "evaluation"},
    )
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metrics(metrics)
        if dataset is not None:
            _log_dataset(dataset, context="evaluation")
        mlflow.log_artifacts(str(report_dir), artifact_path="eval_report")
    return run.info.run_id


def update_evaluation_report(tracking: TrackingConfig, run_id: str, report_dir: Path) -> None:
    """The evaluation run's copy of the report replaced by the files as they are now (the gate was decided again)."""
    tracking.activate()
    mlflow.MlflowClient().log_artifacts(run_id, str(report_dir), artifact_path="eval_report")
