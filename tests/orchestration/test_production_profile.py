"""The production instance template: Dagster's storage and MLflow's store on Postgres."""

import dagster as dg
import pytest
from mlflow.tracking import MlflowClient

from aesthetic_platform.assets import ALL_ASSETS
from aesthetic_platform.jobs.instance import PG_URL_ENV, prepare_dagster_home
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, MLflowResource, resources_for
from aesthetic_platform.tracking import TrackingConfig
from tests.fixtures.postgres import create_database, running_postgres

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
CHAIN = ["prompts", "candidate_images", "content_audit", "judgments"]


@pytest.mark.slow
def test_runs_and_mlflow_live_on_postgres(tmp_path, monkeypatch):
    with running_postgres() as admin:
        dagster_db = create_database(admin, "dagster").set(drivername="postgresql+psycopg2")  # dagster-postgres speaks psycopg2
        mlflow_db = create_database(admin, "mlflow").set(drivername="postgresql+psycopg")
        monkeypatch.setenv(PG_URL_ENV, dagster_db.render_as_string(hide_password=False))
        root = DataRoot(tmp_path / "home").ensure()
        home = prepare_dagster_home(root, "production")
        tracking_uri = mlflow_db.render_as_string(hide_password=False)
        resources = {
            **resources_for("local"), "data_root": DataRootResource(home=str(root.root)),
            "mlflow_tracking": MLflowResource(tracking_uri=tracking_uri),
        }
        # entered, so this instance is the current definitions-state storage (not a stale one from earlier tests)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
            instance.add_dynamic_partitions("prompt_batch", ["pg-1"])
            chain = {**QUIET, "ops": {"prompts": {"config": {"count": 6}},
                                      "candidate_images": {"config": {"pixel_budget": 48 * 48}}}}
            judged = dg.materialize(ALL_ASSETS, selection=CHAIN, partition_key="pg-1", instance=instance,
                                    resources=resources, run_config=chain)
            assert judged.success
            trained = dg.materialize(
                ALL_ASSETS, selection=["preference_pairs", "aesthetic_model", "eval_report"], instance=instance,
                resources=resources,
                run_config={**QUIET, "ops": {"preference_pairs": {"config": {"train_fraction": 0.5, "val_fraction": 0.2}},
                                             "aesthetic_model": {"config": {"epochs": 1, "batch_size": 8}}}},
            )
            assert trained.success
            # read back from Postgres: both runs and their materializations
            assert {r.run_id for r in instance.get_runs()} >= {judged.run_id, trained.run_id}
            latest = instance.get_latest_materialization_event(dg.AssetKey("aesthetic_model"))
            assert latest is not None and latest.run_id == trained.run_id
        TrackingConfig.for_root(root, tracking_uri).activate()
        client = MlflowClient()
        experiment = client.get_experiment_by_name("aesthetic-scorer")
        runs = client.search_runs([experiment.experiment_id])
        assert {run.info.status for run in runs} == {"FINISHED"} and len(runs) >= 2
        assert client.get_latest_versions("aesthetic-scorer")
        assert experiment.artifact_location.startswith(root.mlflow_artifacts.as_uri())
