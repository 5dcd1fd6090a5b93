"""MLflow logging for training runs (rank 0 only), batched to keep SQLite writes cheap."""

from __future__ import annotations

import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


class MlflowMetricsLogger:
    """Logs every step's metrics into an existing MLflow run."""

    def __init__(self, run_id: str, client: MlflowClient | None = None) -> None:
        self.run_id = run_id
        self.client = client or MlflowClient()

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now = int(time.time() * 1000)
        batch = [Metric(key=name.replace("/", "."), value=float(value), timestamp=now, step=step) for name, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch, synchronous=True)
