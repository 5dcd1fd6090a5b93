"""Classifier training runs and sweeps: each grid point of a sweep request becomes one queued run."""

import dagster as dg

from aesthetic_platform.assets.embeddings import EmbeddingClassifierConfig, embedding_classifier
from aesthetic_platform.embeddings.sweep import mark_submitted, pending_sweeps, record_parent
from aesthetic_platform.resources import DataRootResource, MLflowResource

SWEEP_INTERVAL_S = 30
SWEEP_TAG = "aesthetic/classifier_sweep"

embedding_classifier_job = dg.define_asset_job(
    "embedding_classifier_job", selection=[embedding_classifier], description="Train one classifier on cached embeddings."
)


@dg.sensor(
    job=embedding_classifier_job,
    minimum_interval_seconds=SWEEP_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Queues one embedding_classifier run per grid point of each sweep request in $AESTHETIC_HOME/sweeps.",
)
def classifier_sweep_sensor(
    context: dg.SensorEvaluationContext, data_root: DataRootResource, mlflow_tracking: MLflowResource
) -> dg.SensorResult | dg.SkipReason:
    from aesthetic_platform.tracking.classifiers import EXPERIMENT, start_sweep_run

    root = data_root.root()
    requests = []
    for path, spec in pending_sweeps(root):
        configs = spec.configs()
        queued = context.instance.get_runs_count(dg.RunsFilter(tags={SWEEP_TAG: spec.sweep_id}))
        if queued >= len(configs):  # the request leaves the folder only once all its runs exist
            mark_submitted(path)
            continue
        if not spec.parent_run_id:
            tracking = mlflow_tracking.config_for(root).in_experiment(EXPERIMENT)
            spec = record_parent(path, spec, start_sweep_run(tracking, spec.sweep_id, spec.base.task, len(configs), spec.grid))
        for index, settings in enumerate(configs):
            config = EmbeddingClassifierConfig(**settings.model_dump(), mlflow_parent_run_id=spec.parent_run_id)
            requests.append(dg.RunRequest(
                run_key=f"{spec.sweep_id}-{index}",  # Dagster creates each run once, also if this pass is repeated
                run_config=dg.RunConfig(ops={"embedding_classifier": config}),
                tags={SWEEP_TAG: spec.sweep_id},
            ))
        context.log.info(f"sweep {spec.sweep_id}: {len(configs)} runs requested under MLflow run {spec.parent_run_id}")
    if not requests:
        return dg.SkipReason("no sweep requests")
    return dg.SensorResult(run_requests=requests)
