"""The shipped instance configs put the core library's warnings in the run's event log."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("config_file", ["dagster.yaml", "dagster.production.yaml"])
def test_core_warnings_reach_the_event_log_and_info_does_not(config_file):
    python_logs = yaml.safe_load((REPO / config_file).read_text())["python_logs"]

    @dg.asset
    def judged_elsewhere() -> None:  # what judge_batch logs while it waits for another run of its batch
        logging.getLogger("aesthetic_platform.judging.run").warning("batch 'b1' is being judged by another process: waiting")
        logging.getLogger("aesthetic_platform.ingest.crawl").info("skipped http://127.0.0.1/x: not an image")

    with dg.instance_for_test(overrides={"python_logs": python_logs}) as instance:
        result = dg.materialize([judged_elsewhere], instance=instance)
        messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert "batch 'b1' is being judged by another process: waiting" in messages
    assert not any("not an image" in message for message in messages)  # a crawl's per-URL lines stay out
