"""MLflow store wiring: one tracking store per data root, unless a server URI is given.

Local default is SQLite under the data root (``$AESTHETIC_HOME/mlflow/mlflow.db``)
with artifacts beside it; the experiment is created with an explicit artifact
location so artifacts never land in a stray ``./mlruns`` of the working directory.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from aesthetic_platform.paths import DataRoot

EXPERIMENT = "aesthetic-scorer"
REGISTERED_MODEL = "aesthetic-scorer"
CHAMPION_ALIAS = "champion"


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    experiment: str = EXPERIMENT
    artifact_location: str | None = None
    registered_model: str = REGISTERED_MODEL

    @classmethod
    def for_root(cls, root: DataRoot, tracking_uri: str | None = None, experiment: str = EXPERIMENT) -> TrackingConfig:
        """An explicit ``tracking_uri`` (a server) wins; else SQLite under the data root.

        ``$MLFLOW_TRACKING_URI`` is read once, where resources are chosen (``resources_for``):
        ``mlflow.set_tracking_uri`` rewrites that variable in-process, so reading it here
        would let one data root's store leak into the next."""
        uri = tracking_uri
        if uri and uri.startswith(("http://", "https://", "databricks")):
            return cls(tracking_uri=uri, experiment=experiment)  # the server decides where artifacts go
        if uri:  # a database store (postgresql://, mysql://, ...): artifacts still live under the data root
            root.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
            return cls(tracking_uri=uri, experiment=experiment, artifact_location=root.mlflow_artifacts.as_uri())
        root.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
        root.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
        rebase_local_store(root)
        return cls(
            tracking_uri=f"sqlite:///{root.mlflow_db}",
            experiment=experiment,
            artifact_location=root.mlflow_artifacts.as_uri(),
        )

    def activate(self) -> str:
        """Point the MLflow client here and return the experiment id (created if needed)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            experiment_id = mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        else:
            experiment_id = experiment.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id


#: Columns of MLflow's SQL store that hold artifact locations (absolute by MLflow's design).
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
#: Columns holding a JSON object whose string values may name files of the root (a dataset input's source).
_JSON_LOCATION_COLUMNS = (("datasets", "dataset_source"),)


def rebase_local_store(root: DataRoot) -> int:
    """Point the local store's artifact locations at this root after a move or copy; returns rows changed.

    MLflow writes absolute ``file://`` locations into ``mlflow.db``. A data root that was
    moved or copied (``root.json`` remembers where it lived) gets them rewritten here, as well
    as dataset sources that stores written before sources were kept relative name by absolute
    path, and the ``Default`` experiment is kept inside the root instead of ``./mlruns`` of
    whatever directory a process happened to start in."""
    if not root.mlflow_db.exists():
        return 0
    former = root.former_locations()
    replacements = [(old / "mlflow" / "artifacts", root.mlflow_artifacts) for old in former]
    pairs = [(o.as_uri(), n.as_uri()) for o, n in replacements] + [(str(o), str(n)) for o, n in replacements]
    root_pairs = [(o.as_uri(), root.root.as_uri()) for o in former] + [(str(o), str(root.root)) for o in former]
    changed = 0
    with sqlite3.connect(root.mlflow_db) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, column in _LOCATION_COLUMNS:
            if table not in tables:
                continue
            for old, new in pairs:
                cursor = db.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) WHERE substr({column}, 1, ?) = ?",
                    (new, len(old) + 1, len(old), old),
                )
                changed += cursor.rowcount
        for table, column in _JSON_LOCATION_COLUMNS:
            if table in tables and root_pairs:
                changed += _rebase_json_column(db, table, column, root_pairs)
        if "experiments" in tables:
            default = (root.mlflow_artifacts / "0").as_uri()
            cursor = db.execute("UPDATE experiments SET artifact_location = ? WHERE experiment_id = 0 AND artifact_location != ?",
                                (default, default))
            changed += cursor.rowcount
    return changed


def _rebase_json_column(db: sqlite3.Connection, table: str, column: str, pairs: list[tuple[str, str]]) -> int:
    """Rewrite the string values of a JSON column that name a place under a former root (a dataset's
    ``{"uri": "/old/root/tables/x.parquet"}``); values naming other places, and text that is not JSON, stay."""
    changed = 0
    for rowid, text in db.execute(f"SELECT rowid, {column} FROM {table}").fetchall():
        try:
            value = json.loads(text) if text else None
        except ValueError:
            continue
        rebased = _rebase_value(value, pairs)
        if rebased != value:
            db.execute(f"UPDATE {table} SET {column} = ? WHERE rowid = ?", (json.dumps(rebased), rowid))
            changed += 1
    return changed


def _rebase_value(value: Any, pairs: list[tuple[str, str]]) -> Any:
    if isinstance(value, str):
        for old, new in pairs:
            if value == old or value.startswith(old + "/"):
                return new + value[len(old):]
        return value
    if isinstance(value, dict):
        return {k: _rebase_value(v, pairs) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase_value(v, pairs) for v in value]
    return value
