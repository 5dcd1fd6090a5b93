"""The judge's one configuration: which judge, which endpoint, and everything that shapes a reply."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, field_validator

from aesthetic_platform.judging.prompt import ScoreScale, check_dimensions
from aesthetic_platform.llm.settings import DEFAULT_CHAT_MODEL, EndpointSettings
from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

JudgeKind = Literal["heuristic", "openai"]
JsonMode = Literal["auto", "on", "off"]
BASE_URL_ENV = "AESTHETIC_JUDGE_BASE_URL"
MODEL_ENV = "AESTHETIC_JUDGE_MODEL"


class JudgeConfig(EndpointSettings):
    """Who labels the candidate pairs. For the VLM judge, every field that can change a reply is
    part of ``reply_fingerprint``, so the verdict cache never answers for different settings."""

    kind: JudgeKind = Field(
        default="heuristic", description="'heuristic': built-in pixel judge (offline); 'openai': a VLM behind an OpenAI-compatible API."
    )
    dimensions: list[str] = Field(default=list(DEFAULT_DIMENSIONS), description="Scored dimensions; must include 'total'.")
    scale_min: float = Field(default=1.0, description="Lowest score on the judge's scale.")
    scale_max: float = Field(default=10.0, description="Highest score on the judge's scale.")
    max_side: int = Field(default=768, ge=16, description="Images are resized so their longest side is at most this.")
    concurrency: int = Field(default=8, ge=1, description="Judge calls in flight at once.")
    json_mode: JsonMode = Field(default="auto", description="Ask for response_format=json_object ('auto' falls back when refused).")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature of the VLM.")
    max_tokens: int = Field(default=600, ge=16, description="Longest reply the VLM may write.")

    @field_validator("dimensions")
    @classmethod
    def _valid_dimensions(cls, value: list[str]) -> list[str]:
        check_dimensions(tuple(value))
        return value

    @property
    def scale(self) -> ScoreScale:
        return ScoreScale(self.scale_min, self.scale_max)

    def judge_model(self) -> str:
        """The VLM's name: the config, else ``$AESTHETIC_JUDGE_MODEL``, else the default."""
        return self.resolved_model(DEFAULT_CHAT_MODEL, MODEL_ENV)

    def judge_base_url(self) -> str | None:
        return self.resolved_base_url(BASE_URL_ENV)

    def reply_fingerprint(self) -> str:
        """A short hash of the endpoint and the settings that change what the VLM answers."""
        shaping = {
            "base_url": self.judge_base_url() or "api.openai.com", "max_side": self.max_side, "json_mode": self.json_mode,
            "temperature": self.temperature, "max_tokens": self.max_tokens,
        }
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]
