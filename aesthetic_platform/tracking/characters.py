"""The character classifier and its student in MLflow: params, per-epoch metrics, held-out metrics,
per-class accuracy, plots, and a registered pyfunc per model.

Both models log into one experiment; the student's run is tagged with its teacher's run and
registered model version, so a student can always be traced to the classifier it learnt from.
The pyfunc takes a DataFrame with a ``path`` column (image files) and returns one probability
column per character.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking.runs import source_commit
from aesthetic_platform.tracking.store import TrackingConfig

EXPERIMENT = "character-classifier"
REGISTERED_CLASSIFIER = "character-classifier"
REGISTERED_STUDENT = "character-student"
PYFUNC_NAME = "character_classifier"
INPUT_COLUMN = "path"


@dataclass(frozen=True)
class TrackedCharacterModel:
    """What downstream stages need about a logged character model; ``model_dir`` is relative to the data root."""

    model_dir: str
    mlflow_run_id: str
    experiment_id: str
    registered_model: str
    version: str
    classes: tuple[str, ...]

    def path(self, root: DataRoot) -> Path:
        return root.resolve(self.model_dir)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class CharacterClassifierPyfunc(PythonModel):
    """``predict`` takes a DataFrame with a ``path`` column of image files; one probability column per class comes back."""

    def load_context(self, context: Any) -> None:
        from aesthetic_platform.characters.classifier import CharacterClassifier

        self.model = CharacterClassifier.from_pretrained(Path(context.artifacts["model"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if INPUT_COLUMN not in model_input.columns:
            raise ValueError(f"input lacks the {INPUT_COLUMN!r} column (image file paths)")
        probs = self.model.predict_proba(list(model_input[INPUT_COLUMN]))
        return pd.DataFrame(probs, columns=self.model.classes)


def tracking_for(tracking: TrackingConfig) -> TrackingConfig:
    """The suite's experiment in the same store, under the same name prefix."""
    return tracking.in_experiment(EXPERIMENT)


def _metric_key(name: str) -> str:
    """MLflow keys allow letters, digits, ``_-./`` and spaces; a class folder may hold anything else."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]", "_", name)


def _flat(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    return {f"{prefix}{k}": str(v) for k, v in config.items()}


def _log_model(model_dir: Path, classes: list[str], registered_model: str) -> Any:
    signature = ModelSignature(inputs=Schema([ColSpec("string", INPUT_COLUMN)]),
                               outputs=Schema([ColSpec("double", c) for c in classes]))
    return mlflow.pyfunc.log_model(
        name=PYFUNC_NAME, python_model=CharacterClassifierPyfunc(), artifacts={"model": str(model_dir)},
        registered_model_name=registered_model, signature=signature,
        pip_requirements=["aesthetic-platform", "torch", "timm", "safetensors", "pandas"],
    )


def _log_history(history: list[dict[str, float]]) -> None:
    for epoch, metrics in enumerate(history, start=1):
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if np.isfinite(v)}, step=epoch)


def _log_evaluation(prefix: str, metrics: dict[str, float], per_class: dict[str, float]) -> None:
    mlflow.log_metrics({f"{prefix}_{k}": float(v) for k, v in metrics.items() if np.isfinite(v)})
    mlflow.log_metrics({f"{prefix}_class_accuracy.{_metric_key(name)}": float(v) for name, v in per_class.items()})


def log_classifier(
    result: Any, root: DataRoot, tracking: TrackingConfig, registered_model: str = "",
    tags: dict[str, str] | None = None, dataset_digest: str = "",
) -> TrackedCharacterModel:
    """One MLflow run for a ``ClassifierResult``: params, per-epoch metrics, test metrics with CI, per-class
    accuracy, confusion-matrix and learning-curve plots, the model folder, and a registered pyfunc version
    (``registered_model``, default ``character-classifier`` under the store's name prefix)."""
    from aesthetic_platform.characters.classifier import plots

    registered_model = registered_model or tracking.named(REGISTERED_CLASSIFIER)
    experiment_id = tracking.activate()
    commit = source_commit()
    run_tags = {"aesthetic.kind": "character-classifier", **({"mlflow.source.git.commit": commit} if commit else {}), **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"classifier-{result.config.model_name}", tags=run_tags) as run:
        mlflow.log_params({**_flat(result.config.model_dump()), "classes": len(result.classes), "dataset_dir": result.dataset_dir,
                           "split_digest": result.split.digest(), "dataset_digest": dataset_digest or result.split.digest(),
                           **{f"{k}_images": v for k, v in result.split_sizes.items()}, "parameters": result.parameters,
                           "feature_dim": result.feature_dim})
        _log_history(result.history)
        _log_evaluation("test", result.test.metrics(), result.test.per_class)
        mlflow.log_metrics({"best_epoch": result.best_epoch, "train_seconds": result.train_seconds,
                            "test_beats_chance": float(result.beats_chance())})
        mlflow.log_dict({"classes": result.classes, "confusion": result.test.confusion}, "confusion_matrix.json")
        mlflow.log_dict(result.split.as_dict(), "split.json")
        with tempfile.TemporaryDirectory(prefix="character-plots-") as tmp:
            for path in plots(result, Path(tmp)).values():
                mlflow.log_artifact(str(path), artifact_path="plots")
        info = _log_model(Path(result.model_dir), result.classes, registered_model)
    return TrackedCharacterModel(root.relative(result.model_dir), run.info.run_id, experiment_id, registered_model,
                                 str(info.registered_model_version), tuple(result.classes))


def log_student(
    result: Any, root: DataRoot, tracking: TrackingConfig, teacher: TrackedCharacterModel | None = None,
    registered_model: str = "", tags: dict[str, str] | None = None,
) -> TrackedCharacterModel:
    """One MLflow run for a ``DistillResult``: knobs, per-epoch losses, both models' test metrics, the gap and its
    bound, sizes and CPU speed, plots, and the student as a registered pyfunc tagged with its teacher
    (``registered_model``, default ``character-student`` under the store's name prefix)."""
    from aesthetic_platform.characters.distill import plots

    registered_model = registered_model or tracking.named(REGISTERED_STUDENT)
    experiment_id = tracking.activate()
    teacher_tags = {"teacher.run_id": teacher.mlflow_run_id, "teacher.model": f"{teacher.registered_model} v{teacher.version}"} \
        if teacher else {}
    run_tags = {"aesthetic.kind": "character-student", **teacher_tags, **(tags or {})}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"student-{result.config.student_model}", tags=run_tags) as run:
        mlflow.log_params({**_flat(result.config.model_dump()), "classes": len(result.classes), "teacher_dir": str(result.teacher_dir),
                           "teacher_model": result.teacher.model_name, "split_digest": result.split.digest(),
                           **{f"{k}_images": v for k, v in result.split.sizes().items()}})
        _log_history(result.history)
        _log_evaluation("test", result.student.test.metrics(), result.student.test.per_class)
        mlflow.log_metrics({f"teacher_test_{k}": float(v) for k, v in result.teacher.test.metrics().items() if np.isfinite(v)})
        figures = {}
        for role in ("teacher", "student"):
            f = getattr(result, role)
            figures.update({f"{role}_parameters": f.parameters, f"{role}_file_bytes": f.file_bytes,
                            f"{role}_cpu_images_per_s": f.cpu_images_per_s})
        mlflow.log_metrics({**figures, "gap": result.gap, "gap_ci_low": result.gap_ci[0], "gap_ci_high": result.gap_ci[1],
                            "within_max_gap": float(result.within_max_gap), "compression": result.compression,
                            "cpu_speedup": result.speedup, "best_epoch": result.best_epoch, "train_seconds": result.train_seconds})
        mlflow.log_dict(result.summary(), "distill_result.json")
        with tempfile.TemporaryDirectory(prefix="character-plots-") as tmp:
            for path in plots(result, Path(tmp)).values():
                mlflow.log_artifact(str(path), artifact_path="plots")
        info = _log_model(Path(result.student_dir), result.classes, registered_model)
    return TrackedCharacterModel(root.relative(result.student_dir), run.info.run_id, experiment_id, registered_model,
                                 str(info.registered_model_version), tuple(result.classes))


def registered_model_dir(tracking: TrackingConfig, registered_model: str = "", version: str = "") -> tuple[Path, str]:
    """The saved model folder of a registered version (the newest unless ``version`` is named), downloaded
    from the artifact store, and that version. ``registered_model`` defaults to the classifier under the name prefix."""
    from aesthetic_platform.characters.classifier import WEIGHTS_FILE

    registered_model = registered_model or tracking.named(REGISTERED_CLASSIFIER)
    tracking.activate()
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name='{registered_model}'")
    if not versions:
        raise LookupError(f"no registered model {registered_model!r}: materialize character_classifier first")
    chosen = max(versions, key=lambda v: int(v.version)) if not version else client.get_model_version(registered_model, version)
    folder = mlflow.artifacts.download_artifacts(f"models:/{registered_model}/{chosen.version}")
    found = sorted(Path(folder).rglob(WEIGHTS_FILE))
    if not found:
        raise LookupError(f"{registered_model} version {chosen.version} holds no {WEIGHTS_FILE}")
    return found[0].parent, str(chosen.version)
