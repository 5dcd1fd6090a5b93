"""MLflow as a Dagster resource: SQLite under the data root by default, a server in production."""

from urllib.parse import urlsplit, urlunsplit

import dagster as dg
from pydantic import Field, field_validator

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking import EXPERIMENT, REGISTERED_MODEL, TrackingConfig
from aesthetic_platform.tracking.store import check_name_prefix

#: Where ``aesthetic ui`` serves MLflow by default.
LOCAL_UI_URL = "http://127.0.0.1:5000"


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
    ui_url: str = Field(
        default="",
        description="MLflow UI base URL, for links in asset metadata; empty = the tracking server when tracking_uri names one "
        f"(its user and password left out), else {LOCAL_UI_URL} (aesthetic ui). The profiles fill it from $AESTHETIC_MLFLOW_UI.",
    )

    @field_validator("name_prefix")
    @classmethod
    def _usable_prefix(cls, value: str) -> str:
        """A bad prefix (from the environment, say) is refused where the resources are built, not by the first run."""
        return check_name_prefix(value)

    def config_for(self, root: DataRoot) -> TrackingConfig:
        return TrackingConfig.for_root(
            root, self.tracking_uri or None, self.experiment, name_prefix=self.name_prefix, registered_model=self.registered_model
        )

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_base().rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"

    def ui_base(self) -> str:
        """The UI the metadata links open: the configured one, else a tracking server's own, else the local one."""
        if self.ui_url:
            return self.ui_url
        parts = urlsplit(self.tracking_uri)
        if parts.scheme in ("http", "https") and parts.hostname:
            host = parts.hostname + (f":{parts.port}" if parts.port else "")
            return urlunsplit((parts.scheme, host, parts.path, "", ""))
        return LOCAL_UI_URL
