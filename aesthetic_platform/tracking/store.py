"""MLflow store wiring: one tracking store per data root, unless a server URI is given.

Local default is SQLite under the data root (``$AESTHETIC_HOME/mlflow/mlflow.db``)
with artifacts beside it; the experiment is created with an explicit artifact
location so artifacts never land in a stray ``./mlruns`` of the working directory.

Every experiment and registered model name the platform creates goes through
``TrackingConfig.named``, so data roots that share one store (a team's server or
database) keep apart with a ``name_prefix`` each instead of logging into, promoting in
and loading from each other's names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from aesthetic_platform.paths import LOCATION_FILE, DataRoot

EXPERIMENT = "aesthetic-scorer"
REGISTERED_MODEL = "aesthetic-scorer"
CHAMPION_ALIAS = "champion"
#: What a name prefix may hold: safe in experiment names, registered model names and ``models:/`` URIs.
NAME_PREFIX_PATTERN = r"[A-Za-z0-9_.-]*"
#: Tracking URIs of a server that keeps the artifacts and serves its own UI.
SERVER_SCHEMES = ("http://", "https://", "databricks")


def display_uri(uri: str) -> str:
    """``uri`` fit to print: a password in it replaced by ``***``."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", uri)


def check_name_prefix(prefix: str) -> str:
    """``prefix`` unchanged when experiment names, registered model names and ``models:/`` URIs can all hold it."""
    if not re.fullmatch(NAME_PREFIX_PATTERN, prefix):
        raise ValueError(
            f"MLflow name prefix {prefix!r} may hold only letters, digits, '_', '-' and '.' "
            "(it goes into experiment names, registered model names and models:/ URIs)"
        )
    return prefix


class TrackingStoreError(RuntimeError):
    """The tracking store cannot be used from this data root as configured."""


@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    experiment: str = EXPERIMENT
    artifact_location: str | None = None
    registered_model: str = REGISTERED_MODEL
    #: a database store shared beyond this root: its experiment must keep artifacts under this root
    shared_store: bool = False
    #: put before every experiment and registered model name (``experiment`` and ``registered_model`` hold it already)
    name_prefix: str = ""

    def __post_init__(self) -> None:
        check_name_prefix(self.name_prefix)

    @classmethod
    def for_root(
        cls, root: DataRoot, tracking_uri: str | None = None, experiment: str = EXPERIMENT, *,
        name_prefix: str = "", registered_model: str = REGISTERED_MODEL,
    ) -> TrackingConfig:
        """An explicit ``tracking_uri`` (a server) wins; else SQLite under the data root.

        ``experiment`` and ``registered_model`` are the names before ``name_prefix``.
        ``$MLFLOW_TRACKING_URI`` is read once, where resources are chosen (``resources_for``):
        ``mlflow.set_tracking_uri`` rewrites that variable in-process, so reading it here
        would let one data root's store leak into the next."""
        check_name_prefix(name_prefix)  # before anything is created
        store = replace(cls._store_for(root, tracking_uri), name_prefix=name_prefix)
        return replace(store, experiment=store.named(experiment), registered_model=store.named(registered_model))

    @classmethod
    def _store_for(cls, root: DataRoot, tracking_uri: str | None) -> TrackingConfig:
        uri = tracking_uri
        if uri and _names_local_store(uri, root):
            uri = None  # this root's own mlflow.db, named by URL (a worker inherits it): still the local store
        if uri and uri.startswith(SERVER_SCHEMES):
            return cls(tracking_uri=uri)  # the server decides where artifacts go
        if uri:  # a database store (postgresql://, mysql://, ...): artifacts still live under the data root
            root.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
            rebase_tracking_store(uri, root, moved_from(root), own_default_experiment=False)
            return cls(tracking_uri=uri, artifact_location=root.mlflow_artifacts.as_uri(), shared_store=True)
        root.mlflow_db.parent.mkdir(parents=True, exist_ok=True)
        root.mlflow_artifacts.mkdir(parents=True, exist_ok=True)
        rebase_local_store(root)
        return cls(tracking_uri=f"sqlite:///{root.mlflow_db}", artifact_location=root.mlflow_artifacts.as_uri())

    @property
    def is_server(self) -> bool:
        """A tracking server: it keeps the artifacts and serves its own UI."""
        return self.tracking_uri.startswith(SERVER_SCHEMES)

    def named(self, name: str) -> str:
        """``name`` as this deployment spells it in the store: with the name prefix."""
        return f"{self.name_prefix}{name}"

    def in_experiment(self, experiment: str) -> TrackingConfig:
        """The same store and prefix, in another of the platform's experiments (``experiment`` before the prefix)."""
        return replace(self, experiment=self.named(experiment))

    def activate(self) -> str:
        """Point the MLflow client here and return the experiment id (created if needed).

        In a database store shared beyond this root, an experiment whose artifacts live
        elsewhere belongs to another data root (a copy of this one, or another user's):
        runs logged into it would scatter this root's artifacts, so that is refused."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        experiment = mlflow.get_experiment_by_name(self.experiment)
        if experiment is None:
            experiment_id = mlflow.create_experiment(self.experiment, artifact_location=self.artifact_location)
        else:
            self._check_own_artifacts(experiment.artifact_location)
            experiment_id = experiment.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id

    def _check_own_artifacts(self, location: str) -> None:
        if not self.shared_store or self.artifact_location is None:
            return
        if location == self.artifact_location or location.startswith(self.artifact_location.rstrip("/") + "/"):
            return
        raise TrackingStoreError(
            f"experiment {self.experiment!r} in the tracking store keeps its artifacts at {location}, not under this data "
            f"root's {self.artifact_location}: another data root (a copy of this one, or another user's) uses it. "
            "Give this root names of its own (MLflowResource.name_prefix; the profiles read $AESTHETIC_MLFLOW_PREFIX), "
            "which every experiment and registered model of the platform takes, or a tracking store of its own."
        )


def _names_local_store(uri: str, root: DataRoot) -> bool:
    """Whether ``uri`` is ``sqlite:///<this root>/mlflow/mlflow.db`` (``mlflow.set_tracking_uri`` leaves it in
    the environment of every process started afterwards)."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return False
    return Path(uri[len(prefix):]).resolve() == root.mlflow_db.resolve()


#: Columns of MLflow's SQL store that hold artifact locations (absolute by MLflow's design).
_LOCATION_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)
#: (table, row key, column) of JSON objects whose string values may name files of the root (a dataset input's source).
_JSON_LOCATION_COLUMNS = (("datasets", "dataset_uuid", "dataset_source"),)


def moved_from(root: DataRoot) -> tuple[Path, ...]:
    """Former locations of this root that no longer hold a data root: where it was moved from, not copied from.

    A copy's original is still alive and still owns its rows in a shared store."""
    return tuple(old for old in root.former_locations() if not (old / LOCATION_FILE).exists())


def rebase_local_store(root: DataRoot) -> int:
    """Point the local store's artifact locations at this root after a move or copy; returns rows changed.

    MLflow writes absolute ``file://`` locations into ``mlflow.db``. A data root that was
    moved or copied (``root.json`` remembers where it lived) gets them rewritten here, as well
    as dataset sources that stores written before sources were kept relative name by absolute
    path, and the ``Default`` experiment is kept inside the root instead of ``./mlruns`` of
    whatever directory a process happened to start in. The store is the root's own file, so
    a copy rebases its copy of the rows."""
    if not root.mlflow_db.exists():
        return 0
    return rebase_tracking_store(f"sqlite:///{root.mlflow_db}", root, root.former_locations(), own_default_experiment=True)


def rebase_tracking_store(url: str, root: DataRoot, former: Sequence[Path], own_default_experiment: bool) -> int:
    """Rewrite the locations under ``former`` roots to this root in MLflow's SQL store at ``url``; returns rows changed.

    For a database store shared beyond this root only the moved root's own rows match, so
    other roots' runs are untouched; ``own_default_experiment`` (the local store only) also
    keeps experiment 0's artifacts inside this root."""
    import sqlalchemy as sa

    replacements = [(old / "mlflow" / "artifacts", root.mlflow_artifacts) for old in former]
    pairs = [(o.as_uri(), n.as_uri()) for o, n in replacements] + [(str(o), str(n)) for o, n in replacements]
    root_pairs = [(o.as_uri(), root.root.as_uri()) for o in former] + [(str(o), str(root.root)) for o in former]
    if not pairs and not own_default_experiment:
        return 0
    engine = sa.create_engine(url)
    changed = 0
    try:
        with engine.begin() as db:
            tables = set(sa.inspect(db).get_table_names())
            for table, column in _LOCATION_COLUMNS:
                if table not in tables:
                    continue
                for old, new in pairs:
                    result = db.execute(
                        sa.text(f"UPDATE {table} SET {column} = CAST(:new AS VARCHAR) || substr({column}, :start) "
                                f"WHERE substr({column}, 1, :length) = :old"),
                        {"new": new, "start": len(old) + 1, "length": len(old), "old": old},
                    )
                    changed += result.rowcount
            for table, key, column in _JSON_LOCATION_COLUMNS:
                if table in tables and root_pairs:
                    changed += _rebase_json_column(db, table, key, column, root_pairs)
            if own_default_experiment and "experiments" in tables:
                default = (root.mlflow_artifacts / "0").as_uri()
                result = db.execute(sa.text(
                    "UPDATE experiments SET artifact_location = :default WHERE experiment_id = 0 AND artifact_location != :default"
                ), {"default": default})
                changed += result.rowcount
    finally:
        engine.dispose()
    return changed


def _rebase_json_column(db: Any, table: str, key: str, column: str, pairs: list[tuple[str, str]]) -> int:
    """Rewrite the string values of a JSON column that name a place under a former root (a dataset's
    ``{"uri": "/old/root/tables/x.parquet"}``); values naming other places, and text that is not JSON, stay."""
    import sqlalchemy as sa

    changed = 0
    for row_key, text in db.execute(sa.text(f"SELECT {key}, {column} FROM {table}")).fetchall():
        try:
            value = json.loads(text) if text else None
        except ValueError:
            continue
        rebased = _rebase_value(value, pairs)
        if rebased != value:
            db.execute(sa.text(f"UPDATE {table} SET {column} = :value WHERE {key} = :key"), {"value": json.dumps(rebased), "key": row_key})
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
