"""A data root can be copied (``cp -r``) or moved (``mv``) and keeps working from the new place.

One tiny ``aesthetic demo`` builds a root with everything a user's root has: Dagster history,
prompts, images, the judge cache, pairs, a trained model, the champion and ``mlflow.db``. The
copy is then used while the original is parked elsewhere, so any read of the original fails
and any write there shows up as a new folder at its path.
"""

import hashlib
import json
import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from aesthetic_platform.assets import ALL_ASSETS
from aesthetic_platform.assets.training import EvalReportConfig
from aesthetic_platform.jobs import launch
from aesthetic_platform.jobs.cli import _demo_split, _demo_training_config, app
from aesthetic_platform.jobs.instance import instance_for
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, resources_for
from aesthetic_platform.schemas import PREFERENCE_PAIRS
from aesthetic_platform.scoring import Scorer
from aesthetic_platform.tracking import CHAMPION_ALIAS, REGISTERED_MODEL, TrackingConfig
from aesthetic_platform.tracking.store import rebase_local_store
from tests.fixtures.pairs import write_synthetic_pairs

DEMO = ["--batches", "4", "--prompts", "3", "--per-prompt", "2", "--pixel-budget", "4096"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("relocation") / "demo"
    with pytest.MonkeyPatch.context() as env:  # the CLI points DAGSTER_HOME and AESTHETIC_HOME at the root it runs on
        env.setenv("AESTHETIC_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        result = CliRunner().invoke(app, ["demo", "--home", str(home), "--no-train", *DEMO])
        assert result.exit_code == 0, result.output
        # the demo's training step, run as the demo runs it (its console summary is not what this file tests)
        assert launch.materialize_job(DataRoot(home), "train_and_evaluate", run_config=_demo_training_config(epochs=1)).success
    return home


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def _stored_locations(root: DataRoot) -> list[str]:
    """Every place MLflow's store names: artifact locations, model version storage, dataset sources."""
    columns = [("runs", "artifact_uri"), ("experiments", "artifact_location"), ("model_versions", "storage_location"),
               ("logged_models", "artifact_location"), ("datasets", "dataset_source")]
    with sqlite3.connect(root.mlflow_db) as db:
        return [value for table, column in columns for (value,) in db.execute(f"SELECT {column} FROM {table}")]


def _cli(home: Path, *args: str) -> str:
    result = CliRunner().invoke(app, [*args, "--home", str(home)])
    assert result.exit_code == 0, result.output
    return result.stdout  # library warnings go to stderr


def _judge_from_cache_and_pair(root: DataRoot) -> None:
    """Judging a demo batch again takes every verdict from the copied judge cache, none from the judge; the pairs
    are rebuilt from the judgments' stored paths."""
    with instance_for(root) as instance:
        cached = sorted(root.judge_cache.rglob("*.json"))
        resources = {**resources_for("local"), "data_root": DataRootResource(home=str(root.root))}
        judged = dg.materialize(ALL_ASSETS, selection=["judgments"], partition_key="demo-0001", instance=instance,
                                resources=resources, run_config=QUIET)
        assert judged.success
        (materialization,) = judged.asset_materializations_for_node("judgments")
        numbers = {key: materialization.metadata[key].value for key in ("judge_calls", "from_cache")}
        assert numbers["judge_calls"] == 0 and numbers["from_cache"] == materialization.metadata["dagster/row_count"].value
        assert sorted(root.judge_cache.rglob("*.json")) == cached
    assert launch.materialize_job(root, "pair_dataset", run_config=dg.RunConfig(ops=_demo_split(), **QUIET)).success
    pairs = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(root.table("preference_pairs")), root)
    assert pairs and all(Path(p.image_loser_path).is_relative_to(root.root) and Path(p.image_loser_path).is_file() for p in pairs)


def _works_from(home: Path, gone: Path, monkeypatch: pytest.MonkeyPatch, seed: int, rejudge: bool) -> None:
    """Train (a new run: another seed) and evaluate, then score, all from ``home``; with ``rejudge``, first judge
    a batch again from the cache and rebuild the pairs."""
    monkeypatch.setenv("AESTHETIC_HOME", str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(home / "dagster"))
    root = DataRoot(home).ensure()

    # stored paths are read against the new place
    pairs = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(root.table("preference_pairs")), root)
    assert pairs and all(Path(p.image_winner_path).is_relative_to(home) and Path(p.image_winner_path).is_file() for p in pairs)

    with instance_for(root) as instance:
        demo_runs = len(instance.get_runs())
        assert demo_runs >= 3  # the demo's judging chain, pair dataset and training runs came along
    if rejudge:
        _judge_from_cache_and_pair(root)
    training = _demo_training_config(epochs=1)
    training.ops["aesthetic_model"] = training.ops["aesthetic_model"].model_copy(update={"seed": seed})  # a new run, not the demo's resumed
    # the gate check blocks the run on a regression; here the run must go through whichever model wins
    training.ops["eval_report"] = EvalReportConfig(total_tolerance=1.0, dimension_tolerance=1.0, best_of_n_tolerance=1.0)
    runs_before = set(root.training_runs.iterdir())
    trained = launch.materialize_job(root, "train_and_evaluate", run_config=training)
    assert trained.success
    assert len(set(root.training_runs.iterdir()) - runs_before) == 1  # trained here, into this root
    with instance_for(root) as instance:
        assert len(instance.get_runs()) == demo_runs + (3 if rejudge else 1)  # the new runs are in this root's Dagster history

    # the champion (promoted or kept) is a model folder of this root, the same one MLflow's alias names
    champion = json.loads((root.champion / "champion.json").read_text())
    assert not Path(champion["model_dir"]).is_absolute() and root.resolve(champion["model_dir"]).is_dir()
    experiment_id = TrackingConfig.for_root(root).activate()
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION_ALIAS).version) == champion["version"]
    runs = client.search_runs([experiment_id])
    assert len(runs) >= 4  # two trainings, two evaluations
    for run in runs:
        assert client.list_artifacts(run.info.run_id), run.info.run_name
    stored = _stored_locations(root)
    assert stored and not [s for s in stored if str(gone) in s]
    assert all(s.startswith(home.as_uri()) for s in stored if s.startswith("file:"))  # artifacts stay under the root

    # scoring: the registered champion through MLflow, the champion folder, and `aesthetic score`
    image, prompt = pairs[0].image_winner_path, pairs[0].prompt
    pyfunc = mlflow.pyfunc.load_model(f"models:/{REGISTERED_MODEL}@{CHAMPION_ALIAS}")
    by_mlflow = pyfunc.predict(pd.DataFrame({"image_path": [image], "prompt": [prompt]}))
    by_folder = Scorer.from_pretrained(root.champion).score([image], [prompt])[0]
    by_cli = json.loads(_cli(home, "score", image, "-p", prompt, "--json"))
    assert Path(by_cli["model"]).is_relative_to(home)
    assert by_cli["results"][0]["scores"] == pytest.approx(by_folder, abs=1e-5)
    assert by_mlflow["total"][0] == pytest.approx(by_folder["total"], abs=1e-5)
    assert not gone.exists()  # nothing wrote to the old place


@pytest.mark.slow
def test_a_copied_demo_root_works_without_the_original(demo_root, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(demo_root), str(copy)], check=True)
    before = _snapshot(demo_root)
    parked = tmp_path / "parked"
    demo_root.rename(parked)  # root ignores file modes, so the original is taken away rather than made unreadable
    try:
        _works_from(copy, demo_root, monkeypatch, seed=1, rejudge=True)
    finally:
        parked.rename(demo_root)
    assert _snapshot(demo_root) == before  # the original is untouched
    assert DataRoot(copy).former_locations() == (demo_root,)


@pytest.mark.slow
def test_a_moved_demo_root_works_from_its_new_place(demo_root, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere" / "root"
    moved.parent.mkdir()
    subprocess.run(["mv", str(demo_root), str(moved)], check=True)
    try:
        _works_from(moved, demo_root, monkeypatch, seed=2, rejudge=False)
    finally:
        subprocess.run(["mv", str(moved), str(demo_root)], check=True)  # and back, which is one more move
    assert Scorer.from_pretrained(DataRoot(demo_root).ensure().champion).score(
        [str(next((demo_root / "images").rglob("*.png")))], ["a quiet harbour at dusk"])[0]["total"] is not None


def test_a_copy_reads_its_own_files_not_the_original(tmp_path):
    original = DataRoot(tmp_path / "original").ensure()
    write_synthetic_pairs(original, pairs=6)
    copy = DataRoot(tmp_path / "copy")
    subprocess.run(["cp", "-r", str(original.root), str(copy.root)], check=True)
    copy.ensure()
    for pair in PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(copy.table("preference_pairs")), copy):
        assert Path(pair.image_winner_path).is_relative_to(copy.root) and Path(pair.image_winner_path).is_file()
    assert copy.former_locations() == (original.root,)
    assert original.former_locations() == ()


def test_a_dataset_source_follows_the_root(tmp_path):
    """MLflow keeps a dataset input's source as JSON text; an absolute path there is rebased like artifact locations."""
    first = DataRoot(tmp_path / "first").ensure()
    first.mlflow_db.parent.mkdir(parents=True)
    table = first.table("preference_pairs")
    elsewhere = tmp_path / "outside.parquet"
    with sqlite3.connect(first.mlflow_db) as db:
        db.execute("CREATE TABLE datasets (dataset_uuid TEXT, dataset_source TEXT)")
        db.executemany("INSERT INTO datasets VALUES (?, ?)", [
            ("a", json.dumps({"uri": str(table)})), ("b", json.dumps({"uri": table.as_uri()})),
            ("c", json.dumps({"uri": str(elsewhere)})), ("d", "not json"),
        ])
    moved = DataRoot(tmp_path / "moved")
    first.root.rename(moved.root)
    moved.ensure()
    assert rebase_local_store(moved) == 2
    with sqlite3.connect(moved.mlflow_db) as db:
        sources = dict(db.execute("SELECT dataset_uuid, dataset_source FROM datasets").fetchall())
    assert json.loads(sources["a"]) == {"uri": str(moved.table("preference_pairs"))}
    assert json.loads(sources["b"]) == {"uri": moved.table("preference_pairs").as_uri()}
    assert json.loads(sources["c"]) == {"uri": str(elsewhere)} and sources["d"] == "not json"
    assert rebase_local_store(moved) == 0  # once rebased, opening again changes nothing


def test_the_ui_rebases_a_moved_root_before_mlflow_serves_it(tmp_path):
    from aesthetic_platform.ui import build_services

    first = DataRoot(tmp_path / "first").ensure()
    first.mlflow_db.parent.mkdir(parents=True)
    with sqlite3.connect(first.mlflow_db) as db:
        db.execute("CREATE TABLE datasets (dataset_uuid TEXT, dataset_source TEXT)")
        db.execute("INSERT INTO datasets VALUES (?, ?)", ("a", json.dumps({"uri": str(first.table("preference_pairs"))})))
    moved = DataRoot(tmp_path / "moved")
    first.root.rename(moved.root)
    moved.ensure()
    build_services(moved, tmp_path, "127.0.0.1", 3999, 5999)  # builds the commands, starts nothing
    with sqlite3.connect(moved.mlflow_db) as db:
        (source,) = db.execute("SELECT dataset_source FROM datasets").fetchone()
    assert json.loads(source) == {"uri": str(moved.table("preference_pairs"))}
