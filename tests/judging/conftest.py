"""Fixtures for the judging tests: a tiny judged-able batch and the local OpenAI-compatible server."""

from __future__ import annotations

import pytest

from aesthetic_platform.judging import JudgeConfig, OpenAIJudge
from tests.fixtures import candidates
from tests.fixtures.judge_server import JudgeServerState, running_judge_server

BATCH = "b1"
PROMPTS_PER_BATCH = 2
CANDIDATES_PER_PROMPT = 3  # at one ratio: 3 pairs per prompt -> 6 pairs, 12 calls in both orders


def make_batch(
    root, batch: str = BATCH, prompts: int = PROMPTS_PER_BATCH, per_prompt: int = CANDIDATES_PER_PROMPT, ratios_per_prompt: int = 1
):
    return candidates.make_batch(root, batch, prompts, per_prompt, ratios_per_prompt)


@pytest.fixture
def batch_root(data_root):
    make_batch(data_root)
    return data_root


@pytest.fixture
def judge_server():
    with running_judge_server(JudgeServerState()) as server:
        yield server


def local_judge(server, **overrides) -> OpenAIJudge:
    settings = dict(
        model="local-vlm", base_url=server.base_url, api_key="test-key", concurrency=4, timeout_s=1.0,
        max_attempts=3, max_side=128,
    )
    return OpenAIJudge(JudgeConfig(kind="openai", **{**settings, **overrides}))
