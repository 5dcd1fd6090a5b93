"""An OpenAI-compatible chat endpoint for prompt writing."""

import dagster as dg

from aesthetic_platform.prompts import LLMPromptSource, PromptLLMConfig


class PromptLLMResource(dg.ConfigurableResource, PromptLLMConfig):
    """``PromptLLMConfig`` as a resource (same fields, same defaults); used only when the prompts source is 'llm'."""

    def source(self) -> LLMPromptSource:
        return LLMPromptSource(self)
