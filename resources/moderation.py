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
    even if the run config leaves ``moderation`` off, and ``images`` (with ``enabled``) does the
    same for candidate images (``moderate_images``).
    """

    enabled: bool = Field(default=False, description="Call the endpoint for every audit's prompts (production profile).")
    images: bool = Field(
        default=False, description="With enabled, also send every candidate image (production profile; needs an omni moderation model)."
    )

    @property
    def kind(self) -> str:
        """The content audit's kind tag: ``openai`` when content goes to the endpoint, else ``python`` (rules only)."""
        return "openai" if self.enabled else "python"

    def client(self, thresholds: dict[str, float] | None = None) -> ModerationClient:
        settings = EndpointSettings(
            model=self.model, base_url=self.base_url, api_key=self.api_key, timeout_s=self.timeout_s, max_attempts=self.max_attempts
        )
        return ModerationClient(settings, thresholds)


#: What each profile sends to the moderation endpoint: (prompts, images).
MODERATION_BY_PROFILE = {"local": (False, False), "production": (True, True)}


def moderation_from_env(enabled: bool, images: bool = False) -> ModerationResource:
    """``AESTHETIC_MODERATION=on|off`` overrides the profile's default for prompts (``off`` stops images too);
    the key stays an env var."""
    flag = os.environ.get("AESTHETIC_MODERATION", "")
    if flag not in ("", "on", "off"):
        raise ValueError(f"AESTHETIC_MODERATION={flag!r} is not 'on' or 'off'")
    settings: dict = {"enabled": enabled if not flag else flag == "on"}
    settings["images"] = images and settings["enabled"]
    if settings["enabled"] and os.environ.get("OPENAI_API_KEY"):
        settings["api_key"] = dg.EnvVar("OPENAI_API_KEY")
    return ModerationResource(**settings)


def moderation_for_profile(profile: str) -> ModerationResource:
    """The moderation resource of ``profile`` (``MODERATION_BY_PROFILE``), after ``AESTHETIC_MODERATION``."""
    prompts, images = MODERATION_BY_PROFILE[profile]
    return moderation_from_env(prompts, images)
