"""The OpenAI-compatible moderation endpoint of the content audit, as a Dagster resource."""

import os

import dagster as dg
from pydantic import Field

from aesthetic_platform.audit import ModerationClient
from aesthetic_platform.llm import EndpointSettings


class ModerationResource(dg.ConfigurableResource, EndpointSettings):
    """``EndpointSettings`` of the moderation endpoint (same fields, same defaults).

    Base URL: ``base_url``, else ``$AESTHETIC_MODERATION_BASE_URL``, else ``$OPENAI_BASE_URL``;
    model: ``model``, else ``$AESTHETIC_MODERATION_MODEL``, else ``omni-moderation-latest``.
    ``enabled`` is the profile's switch: when true the audit calls the endpoint for prompts
    even if the run config leaves ``moderation`` off.
    """

    enabled: bool = Field(default=False, description="Call the endpoint for every audit (production profile).")

    def client(self, thresholds: dict[str, float] | None = None) -> ModerationClient:
        settings = EndpointSettings(
            model=self.model, base_url=self.base_url, api_key=self.api_key, timeout_s=self.timeout_s, max_attempts=self.max_attempts
        )
        return ModerationClient(settings, thresholds)


def moderation_from_env(enabled: bool) -> ModerationResource:
    """``AESTHETIC_MODERATION=on|off`` overrides the profile's default; the key stays an env var."""
    flag = os.environ.get("AESTHETIC_MODERATION", "")
    if flag not in ("", "on", "off"):
        raise ValueError(f"AESTHETIC_MODERATION={flag!r} is not 'on' or 'off'")
    settings: dict = {"enabled": enabled if not flag else flag == "on"}
    if settings["enabled"] and os.environ.get("OPENAI_API_KEY"):
        settings["api_key"] = dg.EnvVar("OPENAI_API_KEY")
    return ModerationResource(**settings)
