"""The evaluation's MLflow run keeps the report as it finally reads, also when the gate is decided again at promotion."""

from __future__ import annotations

import mlflow

from aesthetic_platform.tracking import TrackingConfig, TrainedModel, log_evaluation, update_evaluation_report


def test_the_evaluation_runs_report_follows_a_decision_taken_again(data_root, tmp_path):
    tracking = TrackingConfig.for_root(data_root)
    experiment_id = tracking.activate()
    with mlflow.start_run(experiment_id=experiment_id) as training:
        pass
    trained = TrainedModel("models/runs/key/model", training.info.run_id, experiment_id, tracking.registered_model, "2", "key")
    report_dir = tmp_path / "eval"
    report_dir.mkdir()
    (report_dir / "report.md").write_text("promoted")
    run_id = log_evaluation(tracking, trained, report_dir, {"test.accuracy.total": 0.7})
    (report_dir / "report.md").write_text("not promoted: version 3 became champion while this model was evaluated")
    update_evaluation_report(tracking, run_id, report_dir)
    assert mlflow.artifacts.load_text(f"runs:/{run_id}/eval_report/report.md").startswith("not promoted: version 3")
    assert mlflow.MlflowClient().get_run(run_id).data.tags["mlflow.parentRunId"] == training.info.run_id
