"""The three character assets materialized in-process: records, metadata, MLflow runs and registered models."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from aesthetic_platform.assets.characters import CHARACTER_ASSETS
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, MLflowResource
from aesthetic_platform.tracking.characters import REGISTERED_CLASSIFIER, REGISTERED_STUDENT, registered_model_dir, tracking_for

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TINY = {"model_name": "test_efficientnet", "image_size": 32, "epochs": 2, "batch_size": 8, "lr": 3e-3}


def _resources(root: DataRoot, mlflow_prefix: str = "") -> dict:
    return {"data_root": DataRootResource(home=str(root.root)), "mlflow_tracking": MLflowResource(name_prefix=mlflow_prefix)}


@pytest.mark.slow
def test_dataset_classifier_student_chain(data_root: DataRoot, tiny_character_dataset: Path, tmp_path: Path):
    source = tmp_path / "source"
    for name in ("character_000", "character_001", "character_002", "character_003"):  # 4 of the 6 classes, 10 images each
        (source / name).mkdir(parents=True)
        for path in sorted((tiny_character_dataset / name).glob("*.png"))[:10]:
            shutil.copy(path, source / name / path.name)
    (source / "character_003" / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    run_config = {**QUIET, "ops": {
        "character_dataset": {"config": {"source_dir": str(source), "val_fraction": 0.2, "test_fraction": 0.25}},
        "character_classifier": {"config": TINY},
        "character_student": {"config": {"student_model": "test_efficientnet", "image_size": 32, "epochs": 1, "batch_size": 8,
                                         "max_gap": 1.0, "speed_images": 8, "speed_batch_size": 8}},
    }}
    with dg.instance_for_test() as instance:
        result = dg.materialize(CHARACTER_ASSETS, instance=instance, resources=_resources(data_root, "team-a."), run_config=run_config)
    assert result.success
    dataset_md = result.asset_materializations_for_node("character_dataset")[0].metadata
    classifier_md = result.asset_materializations_for_node("character_classifier")[0].metadata
    student_md = result.asset_materializations_for_node("character_student")[0].metadata

    assert dataset_md["source"].value == "folder" and dataset_md["classes"].value == 4 and dataset_md["images"].value == 40
    assert dataset_md["unreadable"].value == 1 and "character_003/corrupt.png" in dataset_md["unreadable_files"].value
    assert dataset_md["split_sizes"].value == {"train": 24, "val": 8, "test": 8}
    assert {"plot_samples", "plot_class_counts"} <= set(dataset_md)

    tracked = result.output_for_node("character_classifier")
    assert (tracked.path(data_root) / "model.safetensors").exists() and not Path(tracked.model_dir).is_absolute()
    assert classifier_md["mlflow_run"].value.endswith(f"/runs/{tracked.mlflow_run_id}")
    classifier_name, student_name = f"team-a.{REGISTERED_CLASSIFIER}", f"team-a.{REGISTERED_STUDENT}"  # the deployment's prefix
    assert classifier_md["registered_model"].value == f"{classifier_name} v1"
    assert {"plot_confusion_matrix", "plot_learning_curves", "test_accuracy", "test_top5", "per_class_accuracy"} <= set(classifier_md)
    assert student_md["registered_model"].value == f"{student_name} v1"
    assert student_md["within_max_gap"].value is True and "plot_teacher_vs_student" in student_md
    assert student_md["teacher"].value == f"{classifier_name} v1"
    # models in their own run folders, every plot and report of the run together under reports/<run id>
    assert [p.name for p in data_root.character_classifiers.iterdir()] == [result.run_id]
    reports = data_root.character_run("reports", result.run_id)
    assert {p.relative_to(reports).as_posix() for p in reports.rglob("*.*")} >= {
        "dataset/samples.png", "classifier/confusion_matrix.png", "student/comparison.json"}

    tracking = tracking_for(MLflowResource(name_prefix="team-a.").config_for(data_root))
    tracking.activate()
    client = MlflowClient()
    run = client.get_run(tracked.mlflow_run_id)
    assert client.get_experiment(run.info.experiment_id).name == "team-a.character-classifier"
    assert run.data.params["model_name"] == "test_efficientnet" and run.data.params["test_images"] == "8"
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2  # one point per epoch
    assert {f"test_class_accuracy.character_00{i}" for i in range(4)} <= set(run.data.metrics)
    assert {"test_top1", "test_top5", "test_accuracy_ci_low", "test_chance"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
    assert artifacts == {"plots/confusion_matrix.png", "plots/learning_curves.png"}
    student_run = client.get_run(student_md["mlflow_run_id"].value)
    assert student_run.data.tags["teacher.run_id"] == tracked.mlflow_run_id
    assert {"gap", "teacher_cpu_images_per_s", "student_file_bytes", "within_max_gap"} <= set(student_run.data.metrics)

    folder, version = registered_model_dir(tracking)  # the classifier, under the prefix
    assert version == "1" and (folder / "classes.json").exists()
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{classifier_name}/1")
    paths = sorted(str(p) for p in (source / "character_000").glob("000*.png"))[:3]
    import pandas as pd

    probs = model.predict(pd.DataFrame({"path": paths}))
    assert list(probs.columns) == [f"character_00{i}" for i in range(4)] and probs.shape == (3, 4)
    assert probs.sum(axis=1).round(4).tolist() == [1.0, 1.0, 1.0]


def test_rendered_dataset_is_reused(data_root: DataRoot):
    config = {"characters": 3, "images_per_character": 6, "image_size": 32, "min_images_per_class": 2}
    with dg.instance_for_test() as instance:
        first = dg.materialize([CHARACTER_ASSETS[0]], instance=instance, resources=_resources(data_root),
                               run_config={**QUIET, "ops": {"character_dataset": {"config": config}}})
        second = dg.materialize([CHARACTER_ASSETS[0]], instance=instance, resources=_resources(data_root),
                                run_config={**QUIET, "ops": {"character_dataset": {"config": config}}})
    a, b = first.output_for_node("character_dataset"), second.output_for_node("character_dataset")
    assert a.dataset_dir == b.dataset_dir and a.dataset_dir.startswith("characters/datasets/rendered-")
    assert a.split_digest == b.split_digest and a.counts == dict.fromkeys([f"character_00{i}" for i in range(3)], 6)
    assert first.asset_materializations_for_node("character_dataset")[0].metadata["source"].value == "rendered"
    with dg.instance_for_test() as instance:
        failed = dg.materialize([CHARACTER_ASSETS[0]], instance=instance, resources=_resources(data_root), raise_on_error=False,
                                run_config={**QUIET, "ops": {"character_dataset": {"config": {**config, "min_images_per_class": 7}}}})
    assert not failed.success
