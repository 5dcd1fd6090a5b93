"""MLflow runs of the character suite's extensions: prototypes (new classes), image+text fusion, the guided generator.

One run per materialization, in one experiment per part, with every knob as a param, per-epoch
metrics (each loss term on its own key), the final metrics with their CIs, and plots, sample
grids and saved models as artifacts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mlflow
import numpy as np

PROTOTYPES_EXPERIMENT = "character-prototypes"
FUSION_EXPERIMENT = "character-fusion"
GENERATOR_EXPERIMENT = "character-generator"


def _finite(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(float(v))}


def _run(tracking: Any, experiment: str, run_name: str, tags: Mapping[str, str] | None) -> tuple[str, Any]:
    """A run in ``experiment`` of ``tracking``'s store (a ``TrackingConfig``), under its name prefix."""
    experiment_id = tracking.in_experiment(experiment).activate()
    return experiment_id, mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=dict(tags or {}))


def log_prototypes(report: Any, config: Mapping[str, Any], plots: Mapping[str, Path], tracking: Any,
                   tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """A prototype build + calibration + few-shot evaluation (``prototypes.PrototypeReport``); returns run and experiment ids."""
    experiment_id, run = _run(tracking, PROTOTYPES_EXPERIMENT, f"prototypes-{report.model_id}", tags)
    with run:
        mlflow.log_params({**{k: str(v) for k, v in config.items()}, "feature_model": report.model_id, "prototype_set": report.set_sha256})
        mlflow.log_metrics(_finite(report.metrics()))
        mlflow.log_dict(report.summary(), "prototype_report.json")
        for path in plots.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
    return {"run_id": run.info.run_id, "experiment_id": experiment_id}


def log_fusion(result: Any, plots: Mapping[str, Path], tracking: Any, tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """Fusion vs image-only (``fusion.FusionResult``): per-epoch curves of both, test accuracies with CIs, the saved heads."""
    experiment_id, run = _run(tracking, FUSION_EXPERIMENT, f"fusion-{result.text_model}", tags)
    with run:
        mlflow.log_params({**{k: str(v) for k, v in result.config.model_dump().items()}, "text_model": result.text_model,
                           "classes": len(result.classes), **{f"{k}_images": v for k, v in result.split_sizes.items()}})
        for epoch, metrics in enumerate(result.fusion_history, start=1):
            mlflow.log_metrics(_finite({f"fusion_{k}": v for k, v in metrics.items()}), step=epoch)
        for epoch, metrics in enumerate(result.image_only_history, start=1):
            mlflow.log_metrics(_finite({f"image_only_{k}": v for k, v in metrics.items()}), step=epoch)
        mlflow.log_metrics(_finite({f"test_{k}": v for k, v in result.metrics().items()}))
        mlflow.log_dict({"examples": result.examples, "best_epochs": result.best_epochs}, "fusion_examples.json")
        for path in plots.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
        with tempfile.TemporaryDirectory(prefix="fusion-") as tmp:
            mlflow.log_artifacts(str(result.save_pretrained(Path(tmp) / "fusion")), artifact_path="model")
    return {"run_id": run.info.run_id, "experiment_id": experiment_id}


def log_generator(result: Any, plots: Mapping[str, Path], tracking: Any, tags: Mapping[str, str] | None = None) -> dict[str, str]:
    """A guided-generator run (``generator.GeneratorResult``): each loss term and the confidence per epoch, the sample grids."""
    experiment_id, run = _run(tracking, GENERATOR_EXPERIMENT, f"generator-{len(result.target_classes)}-classes", tags)
    with run:
        mlflow.log_params({**{k: str(v) for k, v in result.config.model_dump().items()}, "perceptual_network": result.perceptual,
                           "real_images": result.real_images})
        mlflow.log_metric("confidence", result.initial_confidence, step=0)
        for epoch, metrics in enumerate(result.history, start=1):
            mlflow.log_metrics(_finite(metrics), step=epoch)
        mlflow.log_metrics(_finite({"initial_confidence": result.initial_confidence, "final_confidence": result.confidences[-1]}))
        for path in result.samples:
            mlflow.log_artifact(str(path), artifact_path="samples")
        for path in plots.values():
            mlflow.log_artifact(str(path), artifact_path="plots")
        for name in ("generator_config.json", "generator.safetensors", "history.json"):
            if (result.out_dir / name).exists():
                mlflow.log_artifact(str(result.out_dir / name), artifact_path="model")
    return {"run_id": run.info.run_id, "experiment_id": experiment_id}
