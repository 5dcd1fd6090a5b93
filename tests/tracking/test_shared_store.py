"""Data roots that share one tracking store keep apart by a name prefix, in every experiment and registered model."""

from __future__ import annotations

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from aesthetic_platform.audit import AuditConfig
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import MLflowResource
from aesthetic_platform.tracking.character_extensions import FUSION_EXPERIMENT
from aesthetic_platform.tracking.characters import REGISTERED_CLASSIFIER, tracking_for
from aesthetic_platform.tracking.classifiers import EXPERIMENT, registered_name
from aesthetic_platform.tracking.store import TrackingStoreError


def _register_anything(name: str) -> None:
    """A registered version under ``name`` in the active store (what another root's classifier looks like to this one)."""
    with mlflow.start_run() as run:
        mlflow.log_text("not a classifier", "model/readme.txt")
    client = MlflowClient()
    client.create_registered_model(name)
    client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)


def test_roots_sharing_a_database_store_keep_apart_by_name_prefix(tmp_path):
    from aesthetic_platform.assets.audit import image_screen

    shared = f"sqlite:///{tmp_path / 'team-mlflow.db'}"  # a database store outside both roots, as a team's Postgres would be
    first = DataRoot(tmp_path / "first").ensure()
    second = DataRoot(tmp_path / "second").ensure()

    first_tracking = MLflowResource(tracking_uri=shared).config_for(first)
    first_tracking.in_experiment(FUSION_EXPERIMENT).activate()
    first_tracking.in_experiment(EXPERIMENT).activate()
    _register_anything(first_tracking.named(registered_name("safe")))  # the first root's safety classifier

    # Without a prefix the second root would log into the first root's experiments: refused, naming the knob that helps
    unprefixed = MLflowResource(tracking_uri=shared).config_for(second)
    for experiment in (EXPERIMENT, FUSION_EXPERIMENT):
        with pytest.raises(TrackingStoreError, match=r"MLflowResource\.name_prefix.*AESTHETIC_MLFLOW_PREFIX"):
            unprefixed.in_experiment(experiment).activate()

    resource = MLflowResource(tracking_uri=shared, name_prefix="second.")
    second_tracking = resource.config_for(second)
    assert (second_tracking.experiment, second_tracking.registered_model) == ("second.aesthetic-scorer", "second.aesthetic-scorer")
    for experiment in (EXPERIMENT, FUSION_EXPERIMENT, "character-classifier"):
        second_tracking.in_experiment(experiment).activate()  # every experiment of the platform is its own now
    assert tracking_for(second_tracking).experiment == "second.character-classifier"
    assert mlflow.get_experiment_by_name("second.embedding-classifiers").artifact_location.startswith(
        second.mlflow_artifacts.as_uri())

    # The content audit looks for this root's safety classifier only: the first root's is not taken for it
    assert image_screen(second, AuditConfig(image_safety_task="safe"), resource) is None
    with pytest.raises(LookupError, match="embedding-classifier-safe version 1 has no classifier.json"):  # found under the first's names
        image_screen(first, AuditConfig(image_safety_task="safe"), MLflowResource(tracking_uri=shared))
    assert {m.name for m in MlflowClient().search_registered_models()} == {"embedding-classifier-safe"}


def test_a_name_prefix_that_names_cannot_hold_is_refused_before_anything_is_created(tmp_path):
    from aesthetic_platform.tracking import TrackingConfig

    root = DataRoot(tmp_path / "root")
    for bad in ("team/a-", "a b", "models:"):
        with pytest.raises(ValueError, match="name prefix .* may hold only letters, digits"):
            MLflowResource(name_prefix=bad)  # where the profiles build the resources
        with pytest.raises(ValueError, match="name prefix .* may hold only letters, digits"):
            TrackingConfig.for_root(root, name_prefix=bad)
    assert not root.mlflow_db.parent.exists()
    tracking = MLflowResource(name_prefix="team-a_1.").config_for(root)
    assert tracking.named(REGISTERED_CLASSIFIER) == "team-a_1.character-classifier"


def test_the_demo_names_the_store_experiment_and_model_its_runs_went_to(tmp_path, monkeypatch):
    import aesthetic_platform.resources as resources
    from aesthetic_platform.jobs.cli import _tracking_summary

    root = DataRoot(tmp_path / "root").ensure()
    monkeypatch.delenv("AESTHETIC_MLFLOW_PREFIX", raising=False)
    assert _tracking_summary(root) == f"sqlite:///{root.mlflow_db} (experiment aesthetic-scorer, model aesthetic-scorer)"
    monkeypatch.setattr(resources, "_USER_TRACKING_URI", "https://bob:s3cret@mlflow.example:5000")  # as read from the environment
    monkeypatch.setenv("AESTHETIC_MLFLOW_PREFIX", "team-a.")
    assert _tracking_summary(root) == (
        "https://bob:***@mlflow.example:5000 (experiment team-a.aesthetic-scorer, model team-a.aesthetic-scorer)"
    )


def test_the_ui_shows_the_store_the_platform_logs_into(tmp_path):
    """The local SQLite by default, a shared database when one is configured, and no local MLflow for a tracking server."""
    from aesthetic_platform.ui import build_services

    root = DataRoot(tmp_path / "root").ensure()

    def mlflow_backend(services) -> str | None:
        commands = {service.name: service.command for service in services}
        assert "Dagster" in commands
        return commands["MLflow"][commands["MLflow"].index("--backend-store-uri") + 1] if "MLflow" in commands else None

    assert mlflow_backend(build_services(root, tmp_path, "127.0.0.1", 3999, 5999)) == f"sqlite:///{root.mlflow_db}"
    shared = f"sqlite:///{tmp_path / 'team-mlflow.db'}"
    database = MLflowResource(tracking_uri=shared).config_for(root)
    assert mlflow_backend(build_services(root, tmp_path, "127.0.0.1", 3999, 5999, database)) == shared
    server = MLflowResource(tracking_uri="http://127.0.0.1:5555").config_for(root)
    assert mlflow_backend(build_services(root, tmp_path, "127.0.0.1", 3999, 5999, server)) is None


def test_metadata_links_open_the_ui_that_has_the_run():
    run = "/#/experiments/3/runs/abc"
    assert MLflowResource().run_url("3", "abc") == "http://127.0.0.1:5000" + run  # aesthetic ui's
    assert MLflowResource(tracking_uri="sqlite:////shared/mlflow.db").run_url("3", "abc") == "http://127.0.0.1:5000" + run
    server = MLflowResource(tracking_uri="https://bob:s3cret@mlflow.example:8443/team/")
    assert server.run_url("3", "abc") == "https://mlflow.example:8443/team" + run  # the server's own, no credentials
    chosen = MLflowResource(tracking_uri="https://mlflow.example", ui_url="https://ui.example/")
    assert chosen.run_url("3", "abc") == "https://ui.example" + run
