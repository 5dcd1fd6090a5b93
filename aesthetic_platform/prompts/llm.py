"""Prompts written by an LLM behind any OpenAI-compatible endpoint.

The reply must be JSON matching ``LLMPromptReply``; anything else fails with the
server's text quoted, so a misconfigured model is obvious in the run log. The client,
its retries and the JSON extraction are the shared ones of :mod:`aesthetic_platform.llm`.
"""

from __future__ import annotations

from openai import OpenAI
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aesthetic_platform.llm import EndpointSettings, JSONReplyError, extract_json_object, openai_client
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.prompts.vocabulary import COLOURS, LAYOUTS

PROMPT_MODEL_ENV = "AESTHETIC_PROMPT_MODEL"
SYSTEM_PROMPT = """You write prompts for a text-to-image model that makes advertising key visuals and posters.
Reply with JSON only: {{"prompts": [{{"text": ..., "language": "zh"|"en", "category": ..., "subject": ...,
"style": ..., "palette": [colour, ...], "layout": ..., "slogan": ...}}]}}.
Each text names its subject, style, colour palette, layout and headline slogan explicitly.
Colours must come from: {colours}. Layouts must come from: {layouts}.""".format(
    colours=", ".join(sorted(COLOURS)), layouts=", ".join(sorted(LAYOUTS))
)


class PromptLLMConfig(EndpointSettings):
    """The prompt-writing endpoint; the model falls back to ``$AESTHETIC_PROMPT_MODEL``."""

    temperature: float = Field(default=0.9, ge=0, description="Sampling temperature: prompts should vary.")

    def prompt_model(self) -> str:
        return self.resolved_model(model_env=PROMPT_MODEL_ENV)


class LLMPromptReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    prompts: list[PromptRecord]


class LLMPromptError(RuntimeError):
    """The LLM could not be reached or its reply was not valid prompt JSON."""


class LLMPromptSource:
    """Writes prompt records with the configured chat model."""

    def __init__(self, config: PromptLLMConfig) -> None:
        self.config = config

    def generate(self, count: int, languages: tuple[str, ...], theme: str = "", client: OpenAI | None = None) -> list[PromptRecord]:
        request = (
            f"Write {count} distinct prompts. Languages, in rotation: {', '.join(languages)}."
            + (f" Theme: {theme}." if theme else "")
        )
        model = self.config.prompt_model()
        try:
            reply = (client or openai_client(self.config)).chat.completions.create(
                model=model,
                temperature=self.config.temperature,
                response_format={"type": "json_object"},
                messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": request}],
            )
        except Exception as exc:  # the SDK already retried transient failures
            endpoint = self.config.resolved_base_url() or "default endpoint"
            raise LLMPromptError(f"prompt LLM {model!r} at {endpoint} failed: {exc}") from exc
        content = reply.choices[0].message.content or ""
        return parse_llm_reply(content)


def parse_llm_reply(content: str) -> list[PromptRecord]:
    """Validate an LLM reply; tolerate a Markdown fence or prose around the JSON."""
    try:
        parsed = LLMPromptReply.model_validate(extract_json_object(content, required_keys=("prompts",)))
    except (JSONReplyError, ValidationError) as exc:
        raise LLMPromptError(f"prompt LLM reply is not valid prompt JSON ({exc}); reply was: {content[:300]!r}") from exc
    if not parsed.prompts:
        raise LLMPromptError("prompt LLM reply holds no prompts")
    return parsed.prompts
