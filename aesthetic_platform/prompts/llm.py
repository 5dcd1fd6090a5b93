"""Prompts written by an LLM behind any OpenAI-compatible endpoint.

The reply must be JSON matching ``LLMPromptReply``; anything else fails with the
server's text quoted, so a misconfigured model is obvious in the run log.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from openai import OpenAI
from pydantic import BaseModel, ConfigDict, ValidationError

from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.prompts.vocabulary import COLOURS, LAYOUTS

SYSTEM_PROMPT = """You write prompts for a text-to-image model that makes advertising key visuals and posters.
Reply with JSON only: {"prompts": [{"text": ..., "language": "zh"|"en", "category": ..., "subject": ...,
"style": ..., "palette": [colour, ...], "layout": ..., "slogan": ...}]}.
Each text names its subject, style, colour palette, layout and headline slogan explicitly.
Colours must come from: %(colours)s. Layouts must come from: %(layouts)s.""" % {
    "colours": ", ".join(sorted(COLOURS)),
    "layouts": ", ".join(sorted(LAYOUTS)),
}


class LLMPromptReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompts: list[PromptRecord]


class LLMPromptError(RuntimeError):
    """The LLM could not be reached or its reply was not valid prompt JSON."""


@dataclass(frozen=True)
class LLMPromptSource:
    model: str
    base_url: str | None = None
    api_key: str | None = None
    temperature: float = 0.9
    timeout_s: float = 60.0
    max_retries: int = 3

    def client(self) -> OpenAI:
        return OpenAI(
            base_url=self.base_url or os.environ.get("OPENAI_BASE_URL"),
            api_key=self.api_key or os.environ.get("OPENAI_API_KEY") or "not-needed",
            timeout=self.timeout_s,
            max_retries=self.max_retries,
        )

    def generate(self, count: int, languages: tuple[str, ...], theme: str = "", client: OpenAI | None = None) -> list[PromptRecord]:
        request = (
            f"Write {count} distinct prompts. Languages, in rotation: {', '.join(languages)}."
            + (f" Theme: {theme}." if theme else "")
        )
        try:
            reply = (client or self.client()).chat.completions.create(
                model=self.model,
                temperature=self.temperature,
                response_format={"type": "json_object"},
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": request}],
            )
        except Exception as exc:  # the SDK already retried transient failures
            raise LLMPromptError(f"prompt LLM {self.model!r} at {self.base_url or 'default endpoint'} failed: {exc}") from exc
        content = reply.choices[0].message.content or ""
        return parse_llm_reply(content)


def parse_llm_reply(content: str) -> list[PromptRecord]:
    """Validate an LLM reply; tolerate a Markdown fence around the JSON."""
    body = content.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        parsed = LLMPromptReply.model_validate(json.loads(body))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise LLMPromptError(f"prompt LLM reply is not valid prompt JSON ({exc}); reply was: {content[:300]!r}") from exc
    if not parsed.prompts:
        raise LLMPromptError("prompt LLM reply holds no prompts")
    return parsed.prompts
