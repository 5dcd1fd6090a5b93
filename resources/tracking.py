"""MLflow as a Dagster resource: SQLite under the data root by default, a server in production."""

import dagster as dg
from pydantic import Field

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking import EXPERIMENT, REGISTERED_MODEL, TrackingConfig


class MLflowResource(dg.ConfigurableResource):
    tracking_uri: str = Field(
        default="",
        description="MLflow tracking URI (a server); empty = SQLite under the data root. The profiles fill it from $MLFLOW_TRACKING_URI.",
    )
    experiment: str = Field(default=EXPERIMENT, description="Experiment for training runs (before name_prefix).")
    registered_model: str = Field(default=REGISTERED_MODEL, description="Registered model name (before name_prefix).")
    name_prefix: str = Field(
        default="",
        description="Put before every experiment and registered model name of the platform (scorer, embedding classifiers, "
        "character suite), so data roots sharing one tracking store keep apart; letters, digits, '_', '-', '.'. "
        "The profiles fill it from $AESTHETIC_MLFLOW_PREFIX.",
    )
    ui_url: str = Field(default="http://127.0.0.1:5000", description="MLflow UI base URL, for links in asset metadata.")

    def config_for(self, root: DataRoot) -> TrackingConfig:
        return TrackingConfig.for_root(
            root, self.tracking_uri or None, self.experiment, name_prefix=self.name_prefix, registered_model=self.registered_model
        )

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
