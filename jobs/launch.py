"""Running the platform's jobs in-process against a data root's instance.

``build_definitions`` is the one place the assets, jobs, schedules, sensors and
resources come together (the code location in ``definitions.py`` calls it), and the
``aesthetic`` commands use the helpers below to run the very same jobs in-process, so
every CLI run shows up in the Dagster UI with full lineage.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

if TYPE_CHECKING:  # only a type: no run-time dependency on Dagster's private error module
    from dagster._utils.error import SerializableErrorInfo

from aesthetic_platform.assets import ALL_ASSETS
from aesthetic_platform.jobs.catalog import ALL_JOBS, ALL_SCHEDULES, ALL_SENSORS
from aesthetic_platform.jobs.instance import PROMPT_BATCH, add_batches, instance_for
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, resources_for


def build_definitions(resources: dict[str, Any] | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=ALL_ASSETS,
        jobs=ALL_JOBS,
        schedules=ALL_SCHEDULES,
        sensors=ALL_SENSORS,
        resources=resources or resources_for(),
    )


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


RunConfigLike = dg.RunConfig | dict[str, Any]


def step_failures(result: dg.ExecuteInProcessResult) -> list[tuple[str, SerializableErrorInfo | None]]:
    """(step key, the error it raised) per failed step: the user's exception, not Dagster's wrapper around it."""
    failures = []
    for event in result.all_events:
        if not event.is_step_failure or event.step_failure_data is None:
            continue
        error = event.step_failure_data.error
        while error is not None and error.cause is not None and error.cls_name and error.cls_name.startswith("Dagster"):
            error = error.cause
        failures.append((event.step_key or "?", error))
    return failures


def failure_summary(result: dg.ExecuteInProcessResult) -> str:
    """One line: each failed step and its exception's message."""
    lines = [
        f"step {step} failed: {' '.join(error.message.split()) if error is not None else 'no error recorded'}"
        for step, error in step_failures(result)
    ]
    return "; ".join(lines) or "no step ran"


def materialize_batches(
    root: DataRoot,
    batches: Sequence[str],
    job_name: str = "candidate_chain",
    run_config: RunConfigLike | None = None,
    instance: dg.DagsterInstance | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Run ``job_name`` over several batches: one run per contiguous partition range.

    A failed run is returned (``success`` False, see ``failure_summary``), not raised: the caller
    reports it in one line and the full log stays in the instance for the UI."""
    with _active(instance, root) as active:
        add_batches(active, batches)
        ordered = active.get_dynamic_partitions(PROMPT_BATCH)
        resources = {**resources_for(), "data_root": DataRootResource(home=str(root.root))}
        job = build_definitions(resources).resolve_job_def(job_name)
        results = []
        for start, end in contiguous_ranges(ordered, batches):
            tags = {ASSET_PARTITION_RANGE_START_TAG: start, ASSET_PARTITION_RANGE_END_TAG: end}
            results.append(job.execute_in_process(run_config=run_config or {}, instance=active, tags=tags, raise_on_error=False))
        return results


def materialize_job(
    root: DataRoot,
    job_name: str = "pair_dataset",
    run_config: RunConfigLike | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    """Run an unpartitioned job (e.g. ``pair_dataset``) in-process against the data root's instance;
    a failed run is returned, not raised, as in ``materialize_batches``."""
    with _active(instance, root) as active:
        resources = {**resources_for(), "data_root": DataRootResource(home=str(root.root))}
        job = build_definitions(resources).resolve_job_def(job_name)
        return job.execute_in_process(run_config=run_config or {}, instance=active, raise_on_error=False)


@contextmanager
def _active(instance: dg.DagsterInstance | None, root: DataRoot) -> Iterator[dg.DagsterInstance]:
    """The caller's instance as is, or the data root's, entered so Dagster's definitions-state
    lookup resolves to it (not to an instance an earlier caller left behind) and disposed after."""
    if instance is not None:
        yield instance
        return
    with instance_for(root) as own:
        yield own
