"""One way to talk to any OpenAI-compatible endpoint: settings, client factory, JSON replies.

Every caller (the VLM judge, the prompt LLM, embeddings, moderation, captioning) builds
its client here, so endpoint resolution, timeouts, retries and attempt counting behave
the same everywhere. Retries are the ``openai`` SDK's own: 408/409/429/5xx, timeouts and
connection errors, exponential backoff with jitter (0.5 s doubling to 8 s), ``Retry-After``
and ``retry-after-ms`` honoured up to 60 s.
"""

from aesthetic_platform.llm.client import Attempts, async_openai_client, count_attempts, openai_client
from aesthetic_platform.llm.replies import JSONReplyError, extract_json_object
from aesthetic_platform.llm.settings import DEFAULT_CHAT_MODEL, NO_KEY, EndpointSettings

__all__ = [
    "DEFAULT_CHAT_MODEL",
    "NO_KEY",
    "Attempts",
    "EndpointSettings",
    "JSONReplyError",
    "async_openai_client",
    "count_attempts",
    "extract_json_object",
    "openai_client",
]
