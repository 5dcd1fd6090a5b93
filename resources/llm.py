"""An OpenAI-compatible chat endpoint for prompt writing."""


import dagster as dg
from pydantic import Field

from aesthetic_platform.prompts import LLMPromptSource


class PromptLLMResource(dg.ConfigurableResource):
    """Any OpenAI-compatible ``base_url``; used only when the prompts source is 'llm'."""

    model: str = Field(default="gpt-4o-mini", description="Chat model name on the endpoint.")
    base_url: str = Field(default="", description="OpenAI-compatible base URL; empty means $OPENAI_BASE_URL or api.openai.com.")
    api_key: str = Field(default="", description="API key; empty means $OPENAI_API_KEY.")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout in seconds.")

    def source(self) -> LLMPromptSource:
        return LLMPromptSource(
            model=self.model, base_url=self.base_url or None, api_key=self.api_key or None, timeout_s=self.timeout_s
        )
