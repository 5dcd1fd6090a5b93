"""Where everything lives under the data root (``AESTHETIC_HOME``).

One place decides the on-disk layout so that writers, readers, the CLI and the
Dagster assets can never disagree about a path.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from aesthetic_platform.atomic import write_json

#: Name of the dynamic partitions of every per-batch asset (one partition = one batch of prompts).
PROMPT_BATCH = "prompt_batch"

HOME_ENV = "AESTHETIC_HOME"
DEFAULT_HOME = ".aesthetic"

CharacterRunKind = Literal["classifiers", "students", "reports", "prototypes", "fusion", "generators"]
CHARACTER_RUN_KINDS: tuple[str, ...] = get_args(CharacterRunKind)

_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The data root: explicit argument, else ``$AESTHETIC_HOME``, else ``./.aesthetic``."""
    chosen = home if home not in (None, "") else os.environ.get(HOME_ENV) or DEFAULT_HOME
    return Path(chosen).expanduser().resolve()


def check_key(kind: str, key: str) -> str:
    """Partition keys and ids become folder names, so only a safe alphabet is allowed."""
    if not _SAFE_KEY.match(key):
        raise ValueError(
            f"invalid {kind} {key!r}: use 1-128 characters from letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    return key


@dataclass(frozen=True)
class DataRoot:
    """The folder layout of one data root."""

    root: Path

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> DataRoot:
        return cls(resolve_home(home))

    # --- folders -----------------------------------------------------------------
    @property
    def tables(self) -> Path:
        return self.root / "tables"

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster"

    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow" / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlflow" / "artifacts"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def training_runs(self) -> Path:
        """Resumable training runs, one folder per (config, data) fingerprint."""
        return self.models / "runs"

    @property
    def champion(self) -> Path:
        """The current champion model, mirrored from MLflow's ``champion`` alias for every scoring surface."""
        return self.models / "champion"

    @property
    def champion_history(self) -> Path:
        return self.models / "champion_history.jsonl"

    @property
    def judge_cache(self) -> Path:
        return self.cache / "judge"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def judge_calibration(self) -> Path:
        """The judge's calibration report (Markdown; its numbers in a ``.json`` beside it)."""
        return self.reports / "judge_calibration.md"

    def eval_report_dir(self, run_key: str, version: str) -> Path:
        return self.reports / f"eval-{check_key('run key', run_key)}-v{check_key('model version', version)}"

    @property
    def workbench(self) -> Path:
        return self.root / "workbench"

    @property
    def lora(self) -> Path:
        """One work folder per LoRA upload (``lora/<job id>``), shared by the CLI, the web app and Dagster."""
        return self.root / "lora"

    @property
    def characters(self) -> Path:
        """The character suite: rendered datasets, classifiers, prototypes' renders, fusion and generator runs."""
        return self.root / "characters"

    def character_runs(self, kind: CharacterRunKind) -> Path:
        """Every run of one kind (``characters/<kind>``), one ``character_run`` folder each."""
        if kind not in CHARACTER_RUN_KINDS:
            raise ValueError(f"unknown character run kind {kind!r}: expected one of {', '.join(CHARACTER_RUN_KINDS)}")
        return self.characters / kind

    def character_run(self, kind: CharacterRunKind, run_id: str) -> Path:
        """A new folder per materialization (``characters/<kind>/<run id>``): earlier models and plots stay where
        their MLflow runs and Dagster metadata point."""
        return self.character_runs(kind) / check_key("run id", run_id)

    @property
    def character_classifiers(self) -> Path:
        """Every saved character classifier."""
        return self.character_runs("classifiers")

    def rendered_character_dataset(self, key: str) -> Path:
        """A procedurally rendered dataset, keyed by (a hash of) its render config so an identical one is reused."""
        return self.characters / "datasets" / f"rendered-{check_key('render key', key)}"

    @property
    def unseen_character_renders(self) -> Path:
        """Renders of characters no classifier was trained on (calibration, imprinting, unknowns), cached across runs."""
        return self.characters / "unseen"

    @property
    def fusion_renders(self) -> Path:
        """Fresh renders of a classifier's characters for the fusion experiment, cached across runs."""
        return self.characters / "fusion-renders"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def inbox_pending(self) -> Path:
        """Accepted inbox files whose run has not been seen yet: ``inbox/pending/<batch>.<ext>``."""
        return self.inbox / "pending"

    @property
    def inbox_rejected(self) -> Path:
        """Refused inbox files, each with a ``<name>.error.txt`` beside it."""
        return self.inbox / "rejected"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def upload(self, batch: str, suffix: str) -> Path:
        """The accepted copy of an uploaded prompt file that the batch's run reads."""
        return self.uploads / f"{check_key('batch', batch)}{suffix}"

    @property
    def classifier_sweeps(self) -> Path:
        """Classifier sweep requests waiting for the sweep sensor (``submitted/`` once their runs are queued)."""
        return self.root / "sweeps"

    @property
    def db_dir(self) -> Path:
        """The embedding and label store's SQLite database (when ``AESTHETIC_DB_URL`` names no server)."""
        return self.root / "db"

    @property
    def store_db(self) -> Path:
        return self.db_dir / "store.db"

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.store_db}"

    # --- relocatable references -----------------------------------------------------
    def relative(self, path: str | os.PathLike[str]) -> str:
        """A path under the root as stored in records (POSIX, relative), so a copied or moved root stays valid."""
        absolute = Path(path).resolve()
        try:
            return absolute.relative_to(self.root).as_posix()
        except ValueError:
            return str(absolute)  # outside the root: kept absolute on purpose

    def resolve(self, stored: str | os.PathLike[str]) -> Path:
        """A stored path read against this root: relative paths join it, and absolute paths under a place
        this root used to live (it was moved or copied) are rebased onto it. Other paths stay as they are."""
        path = Path(stored)
        if not path.is_absolute():
            return self.root / path
        for old in _former_locations(self.root):
            if path.is_relative_to(old):
                return self.root / path.relative_to(old)
        return path

    def former_locations(self) -> tuple[Path, ...]:
        """Where this root was before (from ``root.json``), so records written there still resolve here."""
        return _former_locations(self.root)

    def record_location(self) -> None:
        """Note the current location in ``root.json``, once per move or copy."""
        marker = self.root / LOCATION_FILE
        known = _read_locations(marker)
        if not known or known[-1] != str(self.root):
            write_json(marker, {"locations": [*[p for p in known if p != str(self.root)], str(self.root)]})
            _locations_cache.clear()

    # --- files -------------------------------------------------------------------
    def table(self, name: str, batch: str | None = None) -> Path:
        """A table is one Parquet file, or one file per ``prompt_batch`` partition."""
        if batch is None:
            return self.tables / f"{name}.parquet"
        return self.tables / name / f"{check_key('batch', batch)}.parquet"

    def batch_lock(self, name: str, batch: str) -> Path:
        """Beside a batch's table: held by the one process writing it (``atomic.held_exclusively``)."""
        return self.table(name, batch).with_suffix(".lock")

    def batch_tables(self, name: str) -> list[Path]:
        folder = self.tables / name
        return sorted(folder.glob("*.parquet")) if folder.is_dir() else []

    def candidate_image(self, batch: str, prompt_id: str, seed: int, width: int, height: int) -> Path:
        return (
            self.images
            / check_key("batch", batch)
            / check_key("prompt id", prompt_id)
            / f"{seed}_{width}x{height}.png"
        )

    # --- reference images (crawler) ---------------------------------------------------
    @property
    def crawl(self) -> Path:
        """Crawl state: the source registry and one frontier database per source."""
        return self.root / "crawl"

    @property
    def crawl_sources(self) -> Path:
        return self.crawl / "sources.json"

    def crawl_frontier(self, source: str) -> Path:
        return self.crawl / check_key("crawl source", source) / "frontier.sqlite"

    def reference_image(self, source: str, sha256: str, suffix: str) -> Path:
        """Crawled images are content-addressed per source: ``reference_images/<source>/<sha[:2]>/<sha><suffix>``."""
        return self.root / "reference_images" / check_key("crawl source", source) / sha256[:2] / f"{sha256}{suffix}"

    def ensure(self) -> DataRoot:
        for folder in (self.tables, self.images, self.cache, self.models, self.inbox, self.dagster_home):
            folder.mkdir(parents=True, exist_ok=True)
        self.record_location()
        return self


LOCATION_FILE = "root.json"
_locations_cache: dict[tuple[str, int], tuple[Path, ...]] = {}


def _read_locations(marker: Path) -> list[str]:
    try:
        return list(json.loads(marker.read_text(encoding="utf-8")).get("locations", []))
    except (OSError, ValueError, AttributeError):
        return []


def _former_locations(root: Path) -> tuple[Path, ...]:
    marker = root / LOCATION_FILE
    try:
        stamp = marker.stat().st_mtime_ns
    except OSError:
        return ()
    key = (str(root), stamp)
    if key not in _locations_cache:
        _locations_cache[key] = tuple(Path(p) for p in _read_locations(marker) if p != str(root))
    return _locations_cache[key]
