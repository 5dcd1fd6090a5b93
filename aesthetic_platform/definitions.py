"""The Dagster code location: what ``workspace.yaml``, ``dagster dev`` and
``dagster definitions validate`` load.

Everything is assembled by :func:`aesthetic_platform.jobs.launch.build_definitions`; the
``aesthetic`` commands (``aesthetic_platform.jobs.cli``) run the same jobs in-process.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

from aesthetic_platform.jobs.launch import build_definitions, contiguous_ranges, materialize_batches, materialize_job  # noqa: E402

__all__ = ["build_definitions", "contiguous_ranges", "defs", "materialize_batches", "materialize_job"]

defs = build_definitions()
