"""Where an OpenAI-compatible endpoint is, and how patiently to call it."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_CHAT_MODEL = "gpt-4o-mini"
NO_KEY = "not-needed"  # local OpenAI-compatible servers ignore the key; the SDK insists on one
BASE_URL_ENV = "OPENAI_BASE_URL"
KEY_ENV = "OPENAI_API_KEY"


class EndpointSettings(BaseModel):
    """An endpoint, a model on it, and the call policy. Empty strings fall back to the environment.

    ``base_url`` falls back to ``base_url_env`` (if set) and then ``$OPENAI_BASE_URL``; the key to
    ``$OPENAI_API_KEY``; a model-specific variable (``model_env``) may name the model.
    """

    model_config = ConfigDict(frozen=True)

    model: str = Field(default="", description="Model name on the endpoint; empty means $<model_env> or the caller's default.")
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty means the environment or api.openai.com.")
    api_key: str = Field(default="", description="API key; empty means $OPENAI_API_KEY (local servers need none).")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout in seconds.")
    max_attempts: int = Field(default=5, ge=1, description="Attempts per call (the SDK retries 429, 5xx, timeouts, lost connections).")

    def resolved_base_url(self, base_url_env: str | None = None) -> str | None:
        for candidate in (self.base_url, os.environ.get(base_url_env) if base_url_env else None, os.environ.get(BASE_URL_ENV)):
            if candidate:
                return candidate
        return None

    def resolved_model(self, default: str = DEFAULT_CHAT_MODEL, model_env: str | None = None) -> str:
        return self.model or (os.environ.get(model_env) if model_env else None) or default

    def resolved_api_key(self) -> str:
        return self.api_key or os.environ.get(KEY_ENV) or NO_KEY
