"""The real openai SDK against the local server, with every fault type injected."""

import time

import pytest

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.judging import ImageRef, JudgeConfig, JudgeRequest
from tests.judging.conftest import local_judge
from tests.judging.test_heuristic import PROMPT, poster


@pytest.fixture
def request_pair(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    poster().save(a)
    poster(centre=(0.97, 0.5), clutter=8).save(b)
    return JudgeRequest(PROMPT, ImageRef(str(a), sha256_file(a)), ImageRef(str(b), sha256_file(b)), label="p1:ab")


def judge_one(judge, request):
    got = {}
    judge.judge_all([request], lambda i, v: got.__setitem__(i, v))
    return got[0]


def test_clean_call_records_scores_usage_and_latency(judge_server, request_pair):
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert verdict.ok and verdict.winner == "A" and not verdict.repaired
    assert set(verdict.scores_a) == {"total", "composition", "color", "style_fit", "prompt_alignment"}
    assert verdict.prompt_tokens == 850 and verdict.completion_tokens > 0
    assert verdict.latency_ms > 0 and verdict.attempts == 1
    assert judge_server.state.requests == 1


@pytest.mark.parametrize("fault", ["rate_limit", "server_error", "slow"])
def test_transient_faults_are_retried(judge_server, request_pair, fault):
    judge_server.state.slow_s = 1.5  # past the 1 s client timeout
    judge_server.state.inject(fault)
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert verdict.ok and verdict.attempts == 2
    assert judge_server.state.requests == 2


@pytest.mark.parametrize("fault", ["malformed", "out_of_range", "missing_dimension", "refusal", "string_scores"])
def test_invalid_replies_get_one_repair_request(judge_server, request_pair, fault):
    judge_server.state.inject(fault)
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert verdict.ok and verdict.repaired
    assert judge_server.state.requests == 2


def test_fenced_reply_is_parsed_without_repair(judge_server, request_pair):
    judge_server.state.inject("fenced")
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert verdict.ok and not verdict.repaired and judge_server.state.requests == 1


@pytest.mark.parametrize(
    ("fault", "kind", "message", "requests"),
    [
        ("rate_limit", "transport", "HTTP 429 after 3 attempt(s)", 3),
        ("server_error", "transport", "HTTP 500 after 3 attempt(s)", 3),
        ("malformed", "reply", "the reply is not valid JSON", 2),
        ("out_of_range", "reply", "less than or equal to 10", 2),
        ("missing_dimension", "reply", "prompt_alignment: Field required", 2),
        ("refusal", "reply", "no JSON object in the reply", 2),
    ],
)
def test_persistent_faults_fail_with_a_reason_and_no_score(judge_server, request_pair, fault, kind, message, requests):
    judge_server.state.inject(fault, times=None)
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert not verdict.ok and verdict.scores_a is None and verdict.scores_b is None and verdict.winner == ""
    assert verdict.error_kind == kind and message in verdict.error
    assert judge_server.state.requests == requests


def test_persistent_timeout_fails(judge_server, request_pair):
    judge_server.state.slow_s = 1.0
    judge_server.state.inject("slow", times=None)
    verdict = judge_one(local_judge(judge_server, timeout_s=0.3, max_attempts=2), request_pair)
    assert not verdict.ok and verdict.error_kind == "transport" and "APITimeoutError after 2 attempt(s)" in verdict.error


def test_retry_after_is_honoured(judge_server, request_pair):
    judge_server.state.retry_after = "1"
    judge_server.state.inject("rate_limit")
    started = time.perf_counter()
    verdict = judge_one(local_judge(judge_server), request_pair)
    assert verdict.ok and verdict.attempts == 2 and time.perf_counter() - started >= 1.0
    gap = judge_server.state.request_times[1] - judge_server.state.request_times[0]
    assert gap >= 1.0


def test_server_without_json_mode_is_asked_plainly(judge_server, request_pair):
    judge_server.state.json_mode = False
    judge = local_judge(judge_server)
    verdict = judge_one(judge, request_pair)
    assert verdict.ok and verdict.attempts == 1
    assert judge_server.state.outcomes["rejected_json_mode"] == 1
    judge_one(judge, request_pair)  # remembered: no second rejection
    assert judge_server.state.outcomes["rejected_json_mode"] == 1


def test_concurrency_is_bounded(judge_server, tmp_path):
    judge_server.state.latency_s = 0.3
    requests = []
    for i in range(8):
        path = tmp_path / f"{i}.png"
        poster(centre=(0.3 + 0.05 * i, 0.5)).save(path)
        requests.append(JudgeRequest(PROMPT, ImageRef(str(path), sha256_file(path)), ImageRef(str(path), sha256_file(path))))
    started = time.perf_counter()
    done = []
    local_judge(judge_server, concurrency=4).judge_all(requests, lambda i, v: done.append(v.ok))
    elapsed = time.perf_counter() - started
    assert done == [True] * 8
    assert 0.6 <= elapsed < 2.0  # two waves of four, not one of eight nor eight of one


def test_retry_after_ms_is_honoured_over_the_default_backoff(judge_server, request_pair):
    """The SDK's own backoff starts at 0.5 s at most; a 1.2 s ``retry-after-ms`` must win."""
    judge_server.state.retry_after_ms = "1200"
    judge_server.state.inject("rate_limit")
    verdict = judge_one(local_judge(judge_server), request_pair)
    gap = judge_server.state.request_times[1] - judge_server.state.request_times[0]
    assert verdict.ok and verdict.attempts == 2 and gap >= 1.2


def test_reply_settings_are_part_of_the_fingerprint():
    base = JudgeConfig(kind="openai", model="m", base_url="http://a/v1")
    changed = [base.model_copy(update={k: v}) for k, v in
               {"max_side": 512, "temperature": 0.7, "max_tokens": 300, "base_url": "http://b/v1", "json_mode": "off"}.items()]
    unchanged = [base.model_copy(update={k: v}) for k, v in {"concurrency": 2, "timeout_s": 5.0, "max_attempts": 2}.items()]
    assert len({base.reply_fingerprint(), *(c.reply_fingerprint() for c in changed)}) == 1 + len(changed)
    assert {c.reply_fingerprint() for c in unchanged} == {base.reply_fingerprint()}
