"""A data root whose MLflow store is a shared database (Postgres): moved, its rows follow it; copied, the copy is refused."""

from __future__ import annotations

import shutil

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking.store import TrackingConfig, TrackingStoreError
from tests.fixtures.postgres import create_database, running_postgres


@pytest.mark.slow
def test_a_moved_root_takes_its_runs_along_and_a_copy_cannot_share_them(tmp_path):
    with running_postgres() as admin:
        uri = create_database(admin, "mlflow").set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        first = DataRoot(tmp_path / "first").ensure()
        TrackingConfig.for_root(first, uri).activate()
        with mlflow.start_run() as run:
            mlflow.log_text("kept", "note.txt")
        client = MlflowClient()
        assert client.get_run(run.info.run_id).info.artifact_uri.startswith(first.mlflow_artifacts.as_uri())

        moved = DataRoot(tmp_path / "moved")
        first.root.rename(moved.root)
        moved.ensure()
        TrackingConfig.for_root(moved, uri).activate()
        old_run = client.get_run(run.info.run_id)
        assert old_run.info.artifact_uri.startswith(moved.mlflow_artifacts.as_uri())
        assert mlflow.artifacts.load_text(f"{old_run.info.artifact_uri}/note.txt") == "kept"
        with mlflow.start_run() as second:
            mlflow.log_text("new", "note.txt")
        assert client.get_run(second.info.run_id).info.artifact_uri.startswith(moved.mlflow_artifacts.as_uri())
        assert not first.root.exists()  # nothing was written to the old place

        copy = DataRoot(tmp_path / "copy")
        shutil.copytree(moved.root, copy.root)
        copy.ensure()
        with pytest.raises(TrackingStoreError, match="another data root"):
            TrackingConfig.for_root(copy, uri).activate()
        assert client.get_run(run.info.run_id).info.artifact_uri.startswith(moved.mlflow_artifacts.as_uri())  # untouched
        TrackingConfig.for_root(copy, uri, experiment="aesthetic-scorer-copy").activate()  # its own experiment works
        with mlflow.start_run() as third:
            mlflow.log_text("copy", "note.txt")
        assert client.get_run(third.info.run_id).info.artifact_uri.startswith(copy.mlflow_artifacts.as_uri())


def test_a_leaked_store_url_is_this_roots_own_store_or_refused(tmp_path):
    """``mlflow.set_tracking_uri`` leaves ``sqlite:///<root>/mlflow/mlflow.db`` in the environment of later processes."""
    import os

    first = DataRoot(tmp_path / "first").ensure()
    TrackingConfig.for_root(first).activate()
    leaked = os.environ["MLFLOW_TRACKING_URI"]
    assert leaked == f"sqlite:///{first.mlflow_db}"
    own = TrackingConfig.for_root(first, leaked)
    assert not own.shared_store and own.artifact_location == first.mlflow_artifacts.as_uri()
    other = DataRoot(tmp_path / "other").ensure()
    with pytest.raises(TrackingStoreError, match="another data root"):
        TrackingConfig.for_root(other, leaked).activate()  # would have logged into first's experiment and folder
    from aesthetic_platform.resources import MLflowResource

    through_resource = MLflowResource(tracking_uri=leaked, registered_model="other-scorer").config_for(other)
    assert through_resource.shared_store and through_resource.registered_model == "other-scorer"  # the assets' path too
