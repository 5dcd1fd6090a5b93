"""The ``openai`` client factory, with every HTTP attempt counted.

The SDK retries on its own and does not say how many attempts a failed call took, so
the factory installs an httpx request hook that counts requests into the ``Attempts``
of the current task (a context variable): concurrent calls each see their own count.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from openai import AsyncOpenAI, OpenAI

from aesthetic_platform.llm.settings import EndpointSettings


@dataclass
class Attempts:
    """HTTP requests sent for one logical call (1 + retries)."""

    count: int = 0


_CURRENT: ContextVar[Attempts | None] = ContextVar("aesthetic_llm_attempts", default=None)


@contextmanager
def count_attempts() -> Iterator[Attempts]:
    """Count the HTTP attempts made by SDK calls inside the block (per thread / asyncio task)."""
    attempts = Attempts()
    token = _CURRENT.set(attempts)
    try:
        yield attempts
    finally:
        _CURRENT.reset(token)


def _note_attempt(_request: httpx.Request) -> None:
    if (attempts := _CURRENT.get()) is not None:
        attempts.count += 1


async def _anote_attempt(request: httpx.Request) -> None:
    _note_attempt(request)


def _client_args(settings: EndpointSettings, base_url_env: str | None) -> dict[str, Any]:
    return {
        "base_url": settings.resolved_base_url(base_url_env),
        "api_key": settings.resolved_api_key(),
        "timeout": settings.timeout_s,
        "max_retries": settings.max_attempts - 1,
    }


def openai_client(settings: EndpointSettings, base_url_env: str | None = None) -> OpenAI:
    """A synchronous client for ``settings`` (SDK retries, attempts counted)."""
    http = httpx.Client(timeout=settings.timeout_s, event_hooks={"request": [_note_attempt]})
    # openai accepts httpx clients at run time (it checks for them) but annotates only httpx2's
    return OpenAI(**_client_args(settings, base_url_env), http_client=http)  # type: ignore[arg-type]


def async_openai_client(settings: EndpointSettings, base_url_env: str | None = None) -> AsyncOpenAI:
    """An asyncio client for ``settings`` (SDK retries, attempts counted)."""
    http = httpx.AsyncClient(timeout=settings.timeout_s, event_hooks={"request": [_anote_attempt]})
    return AsyncOpenAI(**_client_args(settings, base_url_env), http_client=http)  # type: ignore[arg-type]  # as above
