"""Embedding classifiers in MLflow: params, per-epoch metrics, test metrics, plots, a registered pyfunc.

The pyfunc takes a DataFrame with an ``embedding`` column (one vector of the classifier's
embedding model per row) and returns one probability column per class.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from aesthetic_platform.embeddings.classifier import CLASSIFIER_FILE, ClassifierResult, load_classifier, plots

EXPERIMENT = "embedding-classifiers"
PYFUNC_NAME = "embedding_classifier"


def registered_name(task: str) -> str:
    return f"embedding-classifier-{task}"


class EmbeddingClassifierPyfunc(PythonModel):
    def load_context(self, context: Any) -> None:
        self.classifier = load_classifier(context.artifacts["classifier"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if "embedding" not in model_input.columns:
            raise ValueError("input lacks the 'embedding' column")
        X = np.stack([np.asarray(v, dtype=np.float32) for v in model_input["embedding"]])
        return pd.DataFrame(self.classifier.predict_proba(X), columns=self.classifier.classes)


def start_sweep_run(tracking: Any, sweep_id: str, task: str, configs: int, grid: dict[str, list]) -> str:
    """The parent run of a sweep (ended at once; children name it as ``mlflow.parentRunId``); returns its id."""
    experiment_id = tracking.activate()
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"sweep {sweep_id}", tags={"task": task, "sweep": sweep_id}) as run:
        params = {"sweep_id": sweep_id, "task": task, "configs": configs}
        mlflow.log_params({**params, **{f"grid.{k}": ",".join(map(str, v)) for k, v in grid.items()}})
    return run.info.run_id


def log_classifier(
    result: ClassifierResult, tracking: Any, registered_model: str = "", tags: dict[str, str] | None = None, parent_run_id: str = ""
) -> dict[str, str]:
    """One MLflow run (in ``tracking``'s store, a ``TrackingConfig``) with everything; returns run id, experiment id, version.
    With ``parent_run_id`` it is a child run of that sweep."""
    experiment_id = tracking.activate()
    registered_model = registered_model or tracking.named(registered_name(result.settings.task))
    run_tags = {"task": result.settings.task, **(tags or {}), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
    with mlflow.start_run(experiment_id=experiment_id, tags=run_tags) as run:
        params = {**result.settings.model_dump(), "embedding_model": result.model_id, "classes": ",".join(result.classes),
                  "positive": result.positive or "", **{f"{k}_items": v for k, v in result.split_sizes.items()}}
        mlflow.log_params(params)
        for epoch, metrics in enumerate(result.history, start=1):
            mlflow.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)}, step=epoch)
        mlflow.log_metrics({f"test_{k}": v for k, v in result.test.items() if np.isfinite(v)})
        mlflow.log_metric("best_epoch", result.best_epoch)
        with tempfile.TemporaryDirectory(prefix="classifier-") as tmp:
            for path in plots(result, Path(tmp) / "plots").values():
                mlflow.log_artifact(str(path), artifact_path="plots")
            folder = result.save(Path(tmp) / "classifier")
            info = mlflow.pyfunc.log_model(
                name=PYFUNC_NAME, python_model=EmbeddingClassifierPyfunc(), artifacts={"classifier": str(folder)},
                registered_model_name=registered_model, pip_requirements=["aesthetic-platform", "torch", "numpy", "pandas"],
            )
    return {"run_id": run.info.run_id, "experiment_id": experiment_id, "registered_model": registered_model,
            "version": str(info.registered_model_version), "model_uri": info.model_uri}


class NotRegisteredError(LookupError):
    """No version is registered under the task's model name: a state to act on, not a broken registration."""


def load_registered_classifier(tracking: Any, task: str, version: str = "") -> tuple[ClassifierResult, str]:
    """The registered classifier of ``task`` under ``tracking``'s name prefix (the newest version unless one is
    named) and its version."""
    tracking.activate()
    name = tracking.named(registered_name(task))
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        raise NotRegisteredError(f"no registered model {name!r}: materialize embedding_classifier for task {task!r} first")
    chosen = max(versions, key=lambda v: int(v.version)) if not version else client.get_model_version(name, version)
    folder = mlflow.artifacts.download_artifacts(f"models:/{name}/{chosen.version}")
    found = sorted(Path(folder).rglob(CLASSIFIER_FILE))
    if not found:
        raise LookupError(f"{name} version {chosen.version} has no {CLASSIFIER_FILE}")
    return load_classifier(found[0].parent), str(chosen.version)
