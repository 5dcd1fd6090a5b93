"""Training and evaluation as Dagster assets: MLflow run, registered model, report, champion check."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from aesthetic_platform.assets import ALL_ASSETS
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import CHAMPION_INFO, champion_dir, has_champion
from aesthetic_platform.resources import DataRootResource, MLflowResource, resources_for
from aesthetic_platform.schemas import DEFAULT_DIMENSIONS, PREFERENCE_PAIRS
from aesthetic_platform.tracking import CHAMPION_ALIAS, REGISTERED_MODEL, TrackingConfig
from aesthetic_platform.training import TrainConfig
from tests.fixtures.pairs import write_synthetic_pairs

REPO = Path(__file__).resolve().parents[2]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _resources(root: DataRoot) -> dict:
    return {**resources_for("local"), "data_root": DataRootResource(home=str(root.root)), "mlflow_tracking": MLflowResource()}


def _train_eval(root: DataRoot, instance, train: dict, tolerance: float = 0.02, **kwargs):
    return dg.materialize(
        ALL_ASSETS, selection=["aesthetic_model", "eval_report"], instance=instance, resources=_resources(root),
        run_config={**QUIET, "ops": {"aesthetic_model": {"config": train}, "eval_report": {"config": {"total_tolerance": tolerance}}}},
        **kwargs,
    )


def champion_info(root: DataRoot) -> dict:
    return json.loads((champion_dir(root) / CHAMPION_INFO).read_text())


FAST_LR = {"optimizer": {"head_lr": 3e-3, "tower_lr": 1e-3}}


def _client(root: DataRoot) -> MlflowClient:
    TrackingConfig.for_root(root).activate()
    return MlflowClient()


@pytest.mark.slow
def test_whole_chain_in_process(data_root):
    resources = _resources(data_root)
    chain = {**QUIET, "ops": {
        "prompts": {"config": {"count": 8}},
        "candidate_images": {"config": {"per_prompt": 2, "pixel_budget": 64 * 64}},  # 2 seeds at each of 2 ratios
    }}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("prompt_batch", ["b1"])
        assert dg.materialize(ALL_ASSETS, selection=["prompts", "candidate_images", "content_audit", "judgments"], partition_key="b1",
                              instance=instance, resources=resources, run_config=chain).success
        result = dg.materialize(
            ALL_ASSETS, selection=["preference_pairs", "aesthetic_model", "eval_report"], instance=instance, resources=resources,
            run_config={**QUIET, "ops": {
                "preference_pairs": {"config": {"train_fraction": 0.5, "val_fraction": 0.2}},
                "aesthetic_model": {"config": {"epochs": 2, "batch_size": 8}},
            }},
        )
        assert result.success
        model_md = result.asset_materializations_for_node("aesthetic_model")[0].metadata
        report_md = result.asset_materializations_for_node("eval_report")[0].metadata
        (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "no_regression_vs_champion"]
    run_id = model_md["mlflow_run_id"].value
    client = _client(data_root)
    run = client.get_run(run_id)
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.info.status == "FINISHED"
    for key in ("loss.objective", *(f"loss.head.{d}" for d in ("total", "composition", "color", "style_fit", "prompt_alignment"))):
        history = client.get_metric_history(run_id, key)
        assert len(history) == model_md["steps"].value >= 2
    objective = client.get_metric_history(run_id, "loss.objective")[-1].value
    assert objective != client.get_metric_history(run_id, "loss.head.total")[-1].value  # the sum, not the head called total
    assert run.data.params["loss.tie_threshold"] == "0.5"
    assert re.fullmatch(rf"train-tiny-\d{{8}}-\d{{6}}-{result.run_id[:8]}", run.info.run_name)
    assert len(run.data.tags["mlflow.source.git.commit"]) == 40
    model_info = mlflow.models.get_model_info(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}")
    assert model_info.saved_input_example_info is not None
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["preference_pairs"]
    # dataset sources are relative to the data root, so they stay true after the root moves
    assert json.loads(run.inputs.dataset_inputs[0].dataset.source) == {"uri": "tables/preference_pairs.parquet"}
    assert "`reports/" in report_md["plot_per_dimension"].value
    assert report_md["report_dir"].value.startswith("reports/eval-"), "shown relative to the data root"
    assert set(model_md["prompts_over_token_limit"].value) == {"train", "val"}  # counted per split, zero or not
    (evaluation,) = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run_id}'"
    )
    assert "test.accuracy.total" in evaluation.data.metrics
    assert {f"train_fit.accuracy.{d}" for d in DEFAULT_DIMENSIONS} <= set(evaluation.data.metrics)
    assert [d.dataset.digest for d in evaluation.inputs.dataset_inputs] == [report_md["eval_set"].value]
    version = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS)
    assert version.run_id == run_id
    run_key = json.loads((champion_dir(data_root) / CHAMPION_INFO).read_text())["run_key"]
    val_total = run.data.metrics["final.val_accuracy.total"]
    assert f"run key {run_key}" in version.description and f"digest {run_key}" in version.description
    assert f"validation accuracy: total {val_total:.1%}" in version.description and run_id in version.description
    assert check.passed and report_md["promoted"].value is True
    assert "95% CIs" in report_md["report"].value and "| total |" in report_md["report"].value
    assert has_champion(data_root)
    artifacts = {a.path for a in client.list_artifacts(evaluation.info.run_id, "eval_report")}
    assert "eval_report/report.md" in artifacts and "eval_report/accuracy_per_dimension.png" in artifacts
    # the registered pyfunc: image paths + prompts in, one column per dimension out
    pair = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(data_root.table("preference_pairs")))[0]
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}")
    scores = pyfunc.predict(pd.DataFrame({"image_path": [pair.image_winner_path, pair.image_loser_path], "prompt": [pair.prompt] * 2}))
    assert list(scores.columns) == ["total", "composition", "color", "style_fit", "prompt_alignment"] and len(scores) == 2
    # the input example carries its image inline: it scores as stored, from any working directory, without the data root
    example = pyfunc.input_example
    assert example["image_path"][0].startswith("data:image/png;base64,")
    assert pair.image_winner_path not in json.dumps(example.to_dict())
    assert len(pyfunc.predict(example)) == 1


def _corrupt_training_labels(root: DataRoot) -> None:
    pairs = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(root.table("preference_pairs")))
    swapped = [
        p.model_copy(update={"image_winner_path": p.image_loser_path, "image_loser_path": p.image_winner_path, "pair_id": p.pair_id + "x"})
        if p.split != "test" else p
        for p in pairs
    ]
    PREFERENCE_PAIRS.write(swapped, root.table("preference_pairs"))


@pytest.mark.slow
def test_worse_model_fails_the_blocking_check_and_keeps_the_champion(data_root):
    write_synthetic_pairs(data_root, pairs=60)
    with dg.instance_for_test() as instance:
        good = _train_eval(data_root, instance, {"epochs": 6, "batch_size": 8, **FAST_LR})
        assert good.success
        first = champion_info(data_root)
        _corrupt_training_labels(data_root)  # a bad batch of teacher labels: the new model learns the opposite
        bad = _train_eval(data_root, instance, {"epochs": 6, "batch_size": 8, **FAST_LR}, raise_on_error=False)
        (check,) = bad.get_asset_check_evaluations()
        runs = [_client(data_root).get_run(r.asset_materializations_for_node("aesthetic_model")[0].metadata["mlflow_run_id"].value)
                for r in (good, bad)]
    assert runs[0].info.run_name != runs[1].info.run_name and all(r.info.run_name.startswith("train-tiny-") for r in runs)
    assert not check.passed, check.metadata["reason"].value
    assert "regresses below the best recorded" in check.metadata["reason"].value
    assert champion_info(data_root)["version"] == first["version"] == "1"
    assert str(_client(data_root).get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version) == "1"


@pytest.mark.slow
def test_killed_training_is_resumed_by_the_asset(data_root, tmp_path):
    write_synthetic_pairs(data_root, pairs=48)
    train = {"epochs": 100, "batch_size": 4, "max_steps": 80, "checkpoint_every": 5, "early_stopping_patience": 1000}
    config_path = tmp_path / "config.json"
    config_path.write_text(TrainConfig(**train).model_dump_json())
    process = subprocess.Popen(
        [sys.executable, "-m", "aesthetic_platform.training.entry", "--config", str(config_path),
         "--pairs", str(data_root.table("preference_pairs")), "--runs-dir", str(data_root.models / "runs")],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    runs, deadline, step = data_root.models / "runs", time.monotonic() + 120, 0
    while time.monotonic() < deadline and step < 10:
        state = next(runs.glob("*/checkpoint/state.pt"), None) if runs.exists() else None
        step = torch.load(state, weights_only=False)["step"] if state else 0
        assert process.poll() is None
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    with dg.instance_for_test() as instance:
        result = _train_eval(data_root, instance, train)
    metadata = result.asset_materializations_for_node("aesthetic_model")[0].metadata
    assert metadata["resumed_from_step"].value >= 10
    assert metadata["steps"].value == 80


@pytest.mark.slow
def test_pipes_subprocess_launcher(data_root):
    write_synthetic_pairs(data_root, pairs=24)
    with dg.instance_for_test() as instance:
        result = _train_eval(data_root, instance, {"launcher": "subprocess", "epochs": 1, "batch_size": 8})
        assert result.success
        materializations = result.asset_materializations_for_node("aesthetic_model")
    metadata = materializations[-1].metadata
    assert metadata["steps"].value >= 1
    assert mlflow.get_run(metadata["mlflow_run_id"].value).data.metrics["final.steps"] == metadata["steps"].value


def test_new_pairs_trigger_re_evaluation():
    from aesthetic_platform.definitions import defs

    with dg.instance_for_test() as instance:
        for key in ("preference_pairs", "aesthetic_model", "eval_report"):
            instance.report_runless_asset_event(dg.AssetMaterialization(key))
        quiet = dg.evaluate_automation_conditions(defs=defs, instance=instance)
        assert quiet.total_requested == 0
        instance.report_runless_asset_event(dg.AssetMaterialization("preference_pairs"))
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=quiet.cursor)
        requested = {r.key.to_user_string() for r in result.results if r.true_subset.size}
        assert requested == {"eval_report"}
    # ... and out of the box something evaluates that condition: the automation sensor ships running
    sensor = defs.resolve_sensor_def("eager_re_evaluation")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert dg.AssetKey("eval_report") in sensor.asset_selection.resolve(defs.resolve_asset_graph())


def test_failed_training_marks_its_mlflow_run_failed(data_root):
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            ALL_ASSETS, selection=["aesthetic_model"], instance=instance, resources=_resources(data_root),
            run_config=QUIET, raise_on_error=False,
        )
    assert not result.success
    assert "preference_pairs" in str(result.failure_data_for_node("aesthetic_model").error)
    client = _client(data_root)
    (run,) = client.search_runs([client.get_experiment_by_name("aesthetic-scorer").experiment_id])
    assert run.info.status == "FAILED"
