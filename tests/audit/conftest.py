"""Audit tests: small batches with chosen prompt texts, and the local moderation endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from aesthetic_platform.audit import ModerationClient
from aesthetic_platform.generation import CandidateConfig, PosterRenderer, generate_candidates
from aesthetic_platform.llm import EndpointSettings
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts import write_prompts
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.schemas import PromptSpec
from tests.fixtures.moderation_server import RunningModeration, running_moderation_server

TEXTS = [
    "A minimalist poster of a lighthouse at dawn, blue and white",
    "霓虹风格的音乐节海报，紫色与粉色",
    "A gory battlefield poster with beheading scenes",
    "一张 forbidden 风格的城市夜景海报",  # only the moderation endpoint flags the trigger word
]


def make_audit_batch(root: DataRoot, batch: str, texts: list[str] = TEXTS, per_prompt: int = 2) -> list[PromptSpec]:
    specs = [PromptRecord(text=t).to_spec(batch, "file") for t in texts]
    write_prompts(root, batch, specs)
    config = CandidateConfig(per_prompt=per_prompt, ratios_per_prompt=1, pixel_budget=48 * 48)  # per_prompt images per prompt
    generate_candidates(root, batch, specs, config, PosterRenderer())
    return specs


@pytest.fixture
def moderation_server() -> Iterator[RunningModeration]:
    with running_moderation_server() as server:
        yield server


def client_for(server: RunningModeration, max_attempts: int = 3, timeout_s: float = 5.0, **thresholds: float) -> ModerationClient:
    settings = EndpointSettings(base_url=server.base_url, model="omni-moderation-latest", timeout_s=timeout_s, max_attempts=max_attempts)
    return ModerationClient(settings, thresholds)
