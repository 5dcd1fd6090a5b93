"""Everything that talks to MLflow: the store, training runs, the pyfunc, the champion alias.

No other package imports ``mlflow``; training, evaluation and the Dagster assets go
through the functions exported here.
"""

from aesthetic_platform.tracking.runs import (
    DatasetRef,
    MlflowMetricsLogger,
    TrainedModel,
    begin_run,
    complete_run,
    fail_run,
    log_evaluation,
    update_evaluation_report,
)
from aesthetic_platform.tracking.store import CHAMPION_ALIAS, EXPERIMENT, REGISTERED_MODEL, TrackingConfig

__all__ = [
    "CHAMPION_ALIAS",
    "EXPERIMENT",
    "DatasetRef",
    "REGISTERED_MODEL",
    "MlflowMetricsLogger",
    "TrackingConfig",
    "TrainedModel",
    "begin_run",
    "complete_run",
    "fail_run",
    "log_evaluation",
    "update_evaluation_report",
]
