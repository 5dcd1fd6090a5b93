"""One way to talk to any OpenAI-compatible endpoint: settings, client factory, JSON replies.

Every caller (the VLM judge, the prompt LLM, embeddings, moderation, captioning) builds
its client here, so endpoint resolution, timeouts, retries and attempt counting behave
the same everywhere. Retries are the ``openai`` SDK's own: 408/409/429/5xx, timeouts and
connection errors, exponential backoff with jitter (0.5 s doubling to 8 s), ``Retry-After``
and ``retry-after-ms`` honoured up to 60 s. Names load on first use, so a config that only
needs ``settings`` does not import the SDK.
"""

from aesthetic_platform.lazy import lazy_exports

_EXPORTS = {
    "Attempts": "client",
    "DEFAULT_CHAT_MODEL": "settings",
    "EndpointSettings": "settings",
    "JSONReplyError": "replies",
    "NO_KEY": "settings",
    "async_openai_client": "client",
    "count_attempts": "client",
    "extract_json_object": "replies",
    "openai_client": "client",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
