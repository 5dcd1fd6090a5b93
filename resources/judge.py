"""The pairwise judge as a Dagster resource: the pixel heuristic or any OpenAI-compatible VLM."""


import os
from typing import Literal

import dagster as dg
from pydantic import Field

from aesthetic_platform.judging import HeuristicJudge, Judge, OpenAIJudge, OpenAIJudgeConfig, ScoreScale
from aesthetic_platform.judging.client import BASE_URL_ENV, DEFAULT_MODEL, MODEL_ENV
from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

JUDGE_ENV = "AESTHETIC_JUDGE"


class JudgeResource(dg.ConfigurableResource):
    """Who labels the candidate pairs; its model and prompt version key the verdict cache."""

    kind: Literal["heuristic", "openai"] = Field(
        default="heuristic", description="'heuristic': built-in pixel judge (offline); 'openai': a VLM behind an OpenAI-compatible API."
    )
    base_url: str = Field(default="", description=f"OpenAI-compatible base URL; empty means ${BASE_URL_ENV} or api.openai.com.")
    model: str = Field(default="", description=f"VLM model name; empty means ${MODEL_ENV} or {DEFAULT_MODEL}.")
    api_key: str = Field(default="", description="API key; empty means $OPENAI_API_KEY.")
    dimensions: list[str] = Field(default=list(DEFAULT_DIMENSIONS), description="Scored dimensions; must include 'total'.")
    scale_min: float = Field(default=1.0, description="Lowest score on the judge's scale.")
    scale_max: float = Field(default=10.0, description="Highest score on the judge's scale.")
    max_side: int = Field(default=768, ge=16, description="Images are resized so their longest side is at most this.")
    concurrency: int = Field(default=8, ge=1, description="Judge calls in flight at once.")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-call timeout in seconds.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per call (429/5xx/timeouts are retried).")
    backoff_base_s: float = Field(default=1.0, ge=0, description="First retry delay; doubles per attempt, with jitter.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest retry delay without a Retry-After header.")
    json_mode: Literal["auto", "on", "off"] = Field(default="auto", description="Ask for response_format=json_object ('auto' falls back when refused).")

    def build(self) -> Judge:
        scale = ScoreScale(self.scale_min, self.scale_max)
        if self.kind == "heuristic":
            return HeuristicJudge(tuple(self.dimensions), scale)
        return OpenAIJudge(OpenAIJudgeConfig(
            model=self.model or os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
            base_url=self.base_url or os.environ.get(BASE_URL_ENV) or None,
            api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or None,
            dimensions=tuple(self.dimensions), scale=scale, max_side=self.max_side, concurrency=self.concurrency,
            timeout_s=self.timeout_s, max_attempts=self.max_attempts, backoff_base_s=self.backoff_base_s,
            backoff_max_s=max(self.backoff_max_s, self.backoff_base_s), json_mode=self.json_mode,
        ))


def judge_from_env(default_kind: str) -> JudgeResource:
    """``AESTHETIC_JUDGE=openai|heuristic`` plus ``AESTHETIC_JUDGE_BASE_URL`` / ``_MODEL``; the key stays an env var."""
    kind = os.environ.get(JUDGE_ENV, default_kind)
    if kind not in ("heuristic", "openai"):
        raise ValueError(f"{JUDGE_ENV}={kind!r} is not one of ('heuristic', 'openai')")
    settings: dict = {"kind": kind, "base_url": os.environ.get(BASE_URL_ENV, ""), "model": os.environ.get(MODEL_ENV, "")}
    if kind == "openai" and os.environ.get("OPENAI_API_KEY"):
        settings["api_key"] = dg.EnvVar("OPENAI_API_KEY")
    return JudgeResource(**settings)
