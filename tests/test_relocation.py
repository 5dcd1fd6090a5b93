"""A data root can be moved or copied: training, evaluation, MLflow and scoring work from the new place."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from mlflow.tracking import MlflowClient

from aesthetic_platform.assets import ALL_ASSETS
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, MLflowResource, resources_for
from aesthetic_platform.schemas import PREFERENCE_PAIRS
from aesthetic_platform.tracking import CHAMPION_ALIAS, REGISTERED_MODEL, TrackingConfig
from tests.fixtures.pairs import write_synthetic_pairs

AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
TRAIN = {"epochs": 2, "batch_size": 8, "optimizer": {"head_lr": 3e-3, "tower_lr": 1e-3}}


def _train_and_evaluate(root: DataRoot, train: dict) -> dg.ExecuteInProcessResult:
    resources = {**resources_for("local"), "data_root": DataRootResource(home=str(root.root)), "mlflow_tracking": MLflowResource()}
    with dg.instance_for_test() as instance:
        return dg.materialize(
            ALL_ASSETS, selection=["aesthetic_model", "eval_report"], instance=instance, resources=resources,
            run_config={**QUIET, "ops": {"aesthetic_model": {"config": train}, "eval_report": {"config": {"total_tolerance": 1.0,
                                                                                                       "dimension_tolerance": 1.0}}}},
        )


def _stored_locations(root: DataRoot) -> list[str]:
    with sqlite3.connect(root.mlflow_db) as db:
        return [row[0] for row in db.execute("SELECT artifact_uri FROM runs")] + [
            row[0] for row in db.execute("SELECT artifact_location FROM experiments")
        ]


@pytest.mark.slow
def test_a_moved_root_trains_evaluates_and_scores(tmp_path):
    first = DataRoot(tmp_path / "first").ensure()
    write_synthetic_pairs(first, pairs=36)
    assert _train_and_evaluate(first, TRAIN).success
    moved = tmp_path / "elsewhere" / "root"
    moved.parent.mkdir()
    shutil.move(first.root, moved)
    root = DataRoot(moved).ensure()
    assert not first.root.exists()  # any path still pointing there would fail loudly

    # stored paths are read against the new place
    pair = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(root.table("preference_pairs")), root)[0]
    assert Path(pair.image_winner_path).is_file() and Path(pair.image_winner_path).is_relative_to(moved)
    champion = json.loads((root.champion / "champion.json").read_text())
    assert not Path(champion["model_dir"]).is_absolute()

    # a second training run and its evaluation, from the moved root
    second = _train_and_evaluate(root, {**TRAIN, "epochs": 3})
    assert second.success
    assert all(str(moved) in location for location in _stored_locations(root))

    # MLflow: the first run's artifacts and the registered champion load from the new place
    TrackingConfig.for_root(root).activate()
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("aesthetic-scorer").experiment_id])
    assert len(runs) >= 4  # two trainings, two evaluations
    for run in runs:
        assert client.list_artifacts(run.info.run_id), run.info.run_name
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}")
    assert pyfunc is not None

    # scoring from the moved root's champion, through the CLI
    env = {**os.environ, "AESTHETIC_HOME": str(moved)}
    out = subprocess.run([AESTHETIC, "score", pair.image_winner_path, "-p", pair.prompt, "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert json.loads(out)["results"][0]["scores"]["total"] is not None


def test_a_copy_reads_its_own_files_not_the_original(tmp_path):
    original = DataRoot(tmp_path / "original").ensure()
    write_synthetic_pairs(original, pairs=6)
    copy = DataRoot(tmp_path / "copy")
    shutil.copytree(original.root, copy.root)
    copy.ensure()
    for pair in PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(copy.table("preference_pairs")), copy):
        assert Path(pair.image_winner_path).is_relative_to(copy.root) and Path(pair.image_winner_path).is_file()
    assert copy.former_locations() == (original.root,)
    assert original.former_locations() == ()
