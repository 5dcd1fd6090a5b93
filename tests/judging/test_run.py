"""Judging a batch: every pair ends judged or failed, re-runs only judge what is missing."""

import polars as pl
import pytest

from aesthetic_platform.judging import HeuristicJudge, JudgingConfig, judge_batch, judge_cache
from aesthetic_platform.prompts import load_prompts
from aesthetic_platform.schemas import JUDGMENTS
from tests.judging.conftest import BATCH, local_judge

CALLS = 12  # 2 prompts x 3 pairs x 2 orders


def test_every_fault_type_ends_judged_or_failed_and_a_rerun_only_judges_the_failed(batch_root, judge_server):
    state = judge_server.state
    state.slow_s = 1.5
    # one prompt that always fails (rules match in order: this one wins for its calls) ...
    doomed = load_prompts(batch_root, BATCH)[0].text
    state.inject("server_error", match=doomed, times=None)
    # ... and one-shot faults on the other calls, recovered by a retry or the repair request
    for fault in ("rate_limit", "server_error", "slow", "malformed", "out_of_range", "missing_dimension", "refusal"):
        state.inject(fault)
    run = judge_batch(batch_root, BATCH, local_judge(judge_server))
    assert len(run.rows) == CALLS
    assert all(
        state.outcomes[f] >= 1 for f in ("rate_limit", "server_error", "slow", "malformed", "out_of_range", "missing_dimension", "refusal")
    )
    assert all(r.status in ("judged", "failed") for r in run.rows)
    assert all(r.scores_a is None and r.winner == "" and r.error for r in run.failed)
    assert all(r.scores_a is not None and r.winner in ("a", "b") for r in run.rows if r.status == "judged")
    doomed_rows = [r for r in run.rows if r.prompt == doomed]
    assert all(r.status == "failed" and "HTTP 500 after 3 attempt(s)" in r.error for r in doomed_rows)
    # most one-shot faults are absorbed (retry / repair); two landing on the same call may still fail it
    assert sum(r.status == "judged" for r in run.rows) >= CALLS // 2 - 2
    table = JUDGMENTS.read(batch_root.table("judgments", BATCH))
    assert table.filter(pl.col("status") == "failed").height == len(run.failed)

    # the outage is over: a re-run asks the server only about the failed pairs
    state.rules.clear()
    before = state.requests
    rerun = judge_batch(batch_root, BATCH, local_judge(judge_server))
    assert state.requests - before == len(run.failed) == rerun.calls
    assert not rerun.failed and rerun.from_cache == CALLS - len(run.failed)
    # and a third run costs nothing at all
    before = state.requests
    assert judge_batch(batch_root, BATCH, local_judge(judge_server)).calls == 0 and state.requests == before


def test_crash_mid_batch_loses_at_most_the_calls_in_flight(batch_root):
    class Crash(RuntimeError):
        pass

    class CrashingJudge(HeuristicJudge):
        calls = 0

        def judge_all(self, requests, on_verdict):
            def counted(index, verdict):
                CrashingJudge.calls += 1
                if CrashingJudge.calls == 5:
                    raise Crash("power cut")
                on_verdict(index, verdict)

            super().judge_all(requests, counted)

    with pytest.raises(Crash):
        judge_batch(batch_root, BATCH, CrashingJudge())
    assert len(judge_cache(batch_root)) == 4  # the four finished verdicts survived
    rerun = judge_batch(batch_root, BATCH, HeuristicJudge())
    assert rerun.calls == CALLS - 4 and rerun.from_cache == 4


def test_position_bias_is_flagged_inconsistent(batch_root, judge_server):
    judge_server.state.inject("position_bias", times=None)
    run = judge_batch(batch_root, BATCH, local_judge(judge_server))
    assert all(r.status == "judged" for r in run.rows)
    # a judge that always prefers the first image flips on every pair whose real totals differ
    assert any(r.consistent is False for r in run.rows)
    pairs = {r.pair_id: r.consistent for r in run.rows}
    assert all(c is not None for c in pairs.values())
    unbiased = judge_batch(batch_root, BATCH, HeuristicJudge())
    assert all(r.consistent for r in unbiased.rows)


def test_one_order_and_pair_sampling(batch_root):
    run = judge_batch(batch_root, BATCH, HeuristicJudge(), JudgingConfig(both_orders=False, max_pairs_per_prompt=2))
    assert len(run.rows) == 4 and {r.order for r in run.rows} == {"ab"}
    assert all(r.consistent is None for r in run.rows)


def test_scores_are_stored_for_the_canonical_images(batch_root):
    rows = judge_batch(batch_root, BATCH, HeuristicJudge()).rows
    by_pair = {}
    for r in rows:
        by_pair.setdefault(r.pair_id, {})[r.order] = r
    for orders in by_pair.values():
        assert orders["ab"].scores_a == orders["ba"].scores_a and orders["ab"].winner == orders["ba"].winner
        assert list(orders["ab"].scores_a) == ["total", "composition", "color", "style_fit", "prompt_alignment"]


def test_missing_candidates_are_a_clear_error(data_root):
    with pytest.raises(FileNotFoundError, match="materialize candidate_images first"):
        judge_batch(data_root, "nothing-here", HeuristicJudge())


def test_a_setting_that_changes_the_reply_asks_again_and_nothing_else_does(batch_root, judge_server):
    state = judge_server.state
    first = judge_batch(batch_root, BATCH, local_judge(judge_server))
    assert first.calls == len(first.rows) > 0
    before = state.requests
    # call policy only: concurrency, timeout, attempts -> every verdict comes from the cache
    same = judge_batch(batch_root, BATCH, local_judge(judge_server, concurrency=1, timeout_s=5.0, max_attempts=2))
    assert same.calls == 0 and state.requests == before
    # the image size the VLM sees changes its reply -> asked again, every pair
    resized = judge_batch(batch_root, BATCH, local_judge(judge_server, max_side=96))
    assert resized.calls == len(resized.rows) and state.requests - before == resized.calls


def test_judging_leaves_out_what_the_audit_excludes_under_each_policy(data_root):
    from aesthetic_platform.audit import AuditConfig, audit_batch, excluded_candidates
    from aesthetic_platform.generation import load_manifest
    from tests.audit.conftest import TEXTS, client_for, make_audit_batch
    from tests.fixtures.moderation_server import running_moderation_server

    specs = make_audit_batch(data_root, "a1", TEXTS)  # 2 candidates per prompt: one pair, judged in both orders
    with running_moderation_server() as server:
        server.state.inject("server_error", times=2)  # both attempts for the first prompt fail: it stays unaudited
        audit = audit_batch(data_root, "a1", AuditConfig(moderation=True, moderation_batch=1), client_for(server, max_attempts=2))
    status = {r.prompt_id: r.status for r in audit.rows if r.kind == "prompt"}
    # 0: unaudited (outage), 1: passed, 2: flagged by the rules, 3: flagged by the endpoint
    assert [status[s.prompt_id] for s in specs] == ["unaudited", "passed", "flagged", "flagged"]
    images = {s.prompt_id: {c.image_id for c in load_manifest(data_root, "a1") if c.prompt_id == s.prompt_id} for s in specs}

    def judged(policy: str) -> set[str]:
        run = judge_batch(data_root, "a1", HeuristicJudge(), excluded=excluded_candidates(data_root, "a1", policy))
        assert run.rows and all(r.status == "judged" for r in run.rows)
        return {r.image_a_id for r in run.rows} | {r.image_b_id for r in run.rows}

    assert judged("skip") == images[specs[1].prompt_id]  # only what passed reaches the judge
    assert judged("include") == images[specs[0].prompt_id] | images[specs[1].prompt_id]  # unaudited judged, flagged never


def test_two_runs_judging_one_batch_at_once_pay_for_each_call_once(batch_root):
    """Two overlapping backfills (or a re-run launched while the first runs): the second waits for the first and
    takes its verdicts from the cache instead of sending every pair to the judge again."""
    import threading
    import time

    class SlowCountingJudge(HeuristicJudge):
        calls = 0
        lock = threading.Lock()

        def judge_all(self, requests, on_verdict):
            def counted(index, verdict):
                with SlowCountingJudge.lock:
                    SlowCountingJudge.calls += 1
                time.sleep(0.02)  # long enough for the runs to overlap
                on_verdict(index, verdict)

            super().judge_all(requests, counted)

    runs: list = []
    threads = [threading.Thread(target=lambda: runs.append(judge_batch(batch_root, BATCH, SlowCountingJudge()))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(runs) == 2 and all(len(run.rows) == CALLS for run in runs)
    assert SlowCountingJudge.calls == CALLS  # not twice
    assert sorted(run.calls for run in runs) == [0, CALLS] and sorted(run.from_cache for run in runs) == [0, CALLS]
    assert batch_root.batch_tables("judgments") == [batch_root.table("judgments", BATCH)]  # the lock is no table
