"""The Dagster code location, and the one core module allowed to import Dagster.

``defs`` is what ``workspace.yaml``, ``dagster dev`` and ``dagster definitions
validate`` load. The helpers below let the ``aesthetic`` CLI run the very same
definitions in-process against the instance under ``$DAGSTER_HOME``, so every run it
starts shows up in the UI with full lineage.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG  # noqa: E402

from aesthetic_platform.assets import ALL_ASSETS  # noqa: E402  (after the warning filters)
from aesthetic_platform.assets.partitions import prompt_batch  # noqa: E402
from aesthetic_platform.jobs import ALL_JOBS, ALL_SCHEDULES, ALL_SENSORS  # noqa: E402
from aesthetic_platform.paths import DataRoot  # noqa: E402
from aesthetic_platform.resources import DataRootResource, resources_for  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
GPU_POOL = "gpu"
GPU_POOL_LIMIT = 1



def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        resources=resources or resources_for(),
    )


defs = build_definitions()


def prepare_dagster_home(root: DataRoot) -> Path:
    """Point ``DAGSTER_HOME`` at the data root and install the instance config there."""
    home = root.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    template = REPO_ROOT / "dagster.yaml"
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
    existing = set(instance.get_dynamic_partitions(prompt_batch.name))
    new = [b for b in dict.fromkeys(batches) if b not in existing]
    if new:
        instance.add_dynamic_partitions(prompt_batch.name, new)
    return new


def contiguous_ranges(ordered: Sequence[str], wanted: Iterable[str]) -> list[tuple[str, str]]:
    """Group wanted partition keys into (start, end) runs of the partition order."""
    positions = sorted({ordered.index(b) for b in wanted})
    ranges: list[tuple[str, str]] = []
    for pos in positions:
        if ranges and ordered.index(ranges[-1][1]) == pos - 1:
            ranges[-1] = (ranges[-1][0], ordered[pos])
        else:
            ranges.append((ordered[pos], ordered[pos]))
    return ranges


def materialize_batches(
    root: DataRoot,
    batches: Sequence[str],
    job_name: str = "candidate_chain",
    run_config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Run ``job_name`` over several batches: one run per contiguous partition range."""
    instance = instance or instance_for(root)
    add_batches(instance, batches)
    ordered = instance.get_dynamic_partitions(prompt_batch.name)
    resources = {**resources_for(), "data_root": DataRootResource(home=str(root.root))}
    job = build_definitions(resources).resolve_job_def(job_name)
    results = []
    for start, end in contiguous_ranges(ordered, batches):
        tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
        results.append(job.execute_in_process(run_config=run_config or {}, instance=instance, tags=tags))
    return results


def materialize_job(
    root: DataRoot,
    job_name: str = "pair_dataset",
    run_config: dict[str, Any] | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Run an unpartitioned job (e.g. ``pair_dataset``) in-process against the data root's instance."""
    instance = instance or instance_for(root)
    resources = {**resources_for(), "data_root": DataRootResource(home=str(root.root))}
    job = build_definitions(resources).resolve_job_def(job_name)
    return job.execute_in_process(run_config=run_config or {}, instance=instance)
