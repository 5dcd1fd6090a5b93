"""The ``prompt_batch`` partitioning shared by every per-batch asset.

The unit is a batch of prompts, never one prompt: Dagster's UI degrades past roughly
25k partitions, and a batch is also the natural unit of a backfill.
"""

import dagster as dg

from aesthetic_platform.paths import PROMPT_BATCH

prompt_batch = dg.DynamicPartitionsDefinition(name=PROMPT_BATCH)

# Backfills run every selected batch in ONE run per asset (single_run): the image
# generator (a multi-GB diffusers pipeline on a GPU) and later the judge client are
# built once instead of once per batch, the `gpu` pool slot is taken once, and
# `dagster asset materialize --partition-range A...B` works. The cost — one failed
# batch fails the run — is cheap here because every expensive step is cached by
# content hash, so a retry only redoes what is missing.
BATCH_BACKFILL_POLICY = dg.BackfillPolicy.single_run()


def observe_partition(context: dg.AssetExecutionContext, partition: str, metadata: dict) -> None:
    """This partition's own numbers, as an observation on that partition.

    In a single-run backfill Dagster records one materialization per partition, all with
    the run's metadata; the per-partition truth is this observation, shown on each
    partition's page (the materialization's own numbers are labelled as run totals)."""
    if "rows" in metadata:
        metadata = {**{k: v for k, v in metadata.items() if k != "rows"}, "dagster/row_count": metadata["rows"]}
    context.log_event(dg.AssetObservation(asset_key=context.asset_key, partition=partition, metadata=metadata))


def run_totals(context: dg.AssetExecutionContext, totals: dict) -> dict:
    """Run-wide totals, named so that nobody reads them as one partition's numbers.

    With one partition the totals are that partition's, and ``rows`` becomes ``dagster/row_count``."""
    if len(context.partition_keys) == 1:
        rows = {"dagster/row_count": totals["rows"]} if "rows" in totals else {}
        return {**{k: v for k, v in totals.items() if k != "rows"}, **rows, "partitions_in_run": 1}
    return {**{f"run_{key}": value for key, value in totals.items()}, "partitions_in_run": len(context.partition_keys)}
