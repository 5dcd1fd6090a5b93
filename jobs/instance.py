"""The Dagster instance of a data root, without loading the code location (orchestration layer).

Commands that only touch the instance (``aesthetic batch add|list``, ``aesthetic ui``)
import this module and ``dagster`` alone, not the assets with their torch, MLflow and
diffusers imports, so they answer in about a second.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from aesthetic_platform.paths import PROMPT_BATCH, DataRoot

REPO_ROOT = Path(__file__).resolve().parents[1]  # jobs/ -> the repository (dagster.yaml lives there)
GPU_POOL = "gpu"
GPU_POOL_LIMIT = 1


#: Instance config per ``AESTHETIC_PROFILE``: SQLite under the data root, or Postgres.
INSTANCE_TEMPLATES = {"local": "dagster.yaml", "production": "dagster.production.yaml"}
PG_URL_ENV = "AESTHETIC_DAGSTER_PG_URL"


def instance_template(profile: str | None = None) -> Path:
    profile = profile or os.environ.get("AESTHETIC_PROFILE", "local")
    if profile not in INSTANCE_TEMPLATES:
        raise ValueError(f"AESTHETIC_PROFILE={profile!r} is not one of {sorted(INSTANCE_TEMPLATES)}")
    if profile == "production" and not os.environ.get(PG_URL_ENV):
        raise ValueError(f"AESTHETIC_PROFILE=production keeps Dagster's storage on Postgres: set {PG_URL_ENV}")
    return REPO_ROOT / INSTANCE_TEMPLATES[profile]


def prepare_dagster_home(root: DataRoot, profile: str | None = None) -> Path:
    """Point ``DAGSTER_HOME`` at the data root and install the profile's instance config there."""
    home = root.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = instance_template(profile)
    target = home / "dagster.yaml"
    if not template.exists():
        raise FileNotFoundError(f"instance config template missing: {template}")
    if not target.exists() or target.read_bytes() != template.read_bytes():
        shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(home)
    os.environ["AESTHETIC_HOME"] = str(root.root)
    return home


def instance_for(root: DataRoot) -> dg.DagsterInstance:
    prepare_dagster_home(root)
    instance = dg.DagsterInstance.get()
    if instance.event_log_storage.supports_global_concurrency_limits:
        current = instance.event_log_storage.get_concurrency_info(GPU_POOL).slot_count
        if current != GPU_POOL_LIMIT and not os.environ.get("AESTHETIC_KEEP_POOL_LIMIT"):
            instance.event_log_storage.set_concurrency_slots(GPU_POOL, GPU_POOL_LIMIT)
    return instance


def add_batches(instance: dg.DagsterInstance, batches: Iterable[str]) -> list[str]:
    """Register ``prompt_batch`` partitions (idempotent); returns the ones that were new."""
    existing = set(instance.get_dynamic_partitions(PROMPT_BATCH))
    new = [b for b in dict.fromkeys(batches) if b not in existing]
    if new:
        instance.add_dynamic_partitions(PROMPT_BATCH, new)
    return new


def list_batches(instance: dg.DagsterInstance) -> list[str]:
    return list(instance.get_dynamic_partitions(PROMPT_BATCH))
