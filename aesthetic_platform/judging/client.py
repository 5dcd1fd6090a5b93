"""A VLM judge behind any OpenAI-compatible endpoint, through the async ``openai`` SDK.

Images travel as base64 PNG data URLs resized to ``max_side``. Calls run with bounded
concurrency; 429, 5xx, timeouts and connection errors are retried with exponential
backoff and jitter, honouring ``Retry-After`` / ``retry-after-ms`` when the server
sends them. The SDK's own retries are off so that one policy, with one attempt
count, applies. JSON mode (``response_format``) is used when the server accepts it;
in ``auto`` mode a server that rejects it is asked again without it, once per judge.
A reply that fails validation gets exactly one repair request; a pair that still
fails comes back as a failed ``Verdict`` with its reason — never with a made-up score.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import io
import os
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from PIL import Image

from aesthetic_platform.judging.base import ImageRef, JudgeRequest, OnVerdict, Verdict
from aesthetic_platform.judging.prompt import JudgePrompt, ScoreScale
from aesthetic_platform.judging.reply import JudgeReply, ReplyError, parse_reply
from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

JsonMode = Literal["auto", "on", "off"]
RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
BASE_URL_ENV = "AESTHETIC_JUDGE_BASE_URL"
MODEL_ENV = "AESTHETIC_JUDGE_MODEL"
KEY_ENV = "OPENAI_API_KEY"
DEFAULT_MODEL = "gpt-4o-mini"
NO_KEY = "not-needed"  # local OpenAI-compatible servers ignore the key; the SDK insists on one


@dataclass(frozen=True)
class OpenAIJudgeConfig:
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    api_key: str | None = None
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    scale: ScoreScale = field(default_factory=ScoreScale)
    max_side: int = 768
    concurrency: int = 8
    timeout_s: float = 60.0
    max_attempts: int = 5
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 120.0
    json_mode: JsonMode = "auto"
    temperature: float = 0.0
    max_tokens: int = 600

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.max_attempts < 1 or self.max_side < 16:
            raise ValueError("concurrency and max_attempts must be >= 1 and max_side >= 16")
        if self.timeout_s <= 0 or self.backoff_base_s < 0 or self.backoff_max_s < self.backoff_base_s:
            raise ValueError("timeout_s must be > 0 and 0 <= backoff_base_s <= backoff_max_s")


def encode_image(path: str, max_side: int) -> str:
    """A PNG data URL of the image, downscaled so its longest side is at most ``max_side``."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def retry_after_s(exc: BaseException) -> float | None:
    """Seconds the server asked us to wait: ``retry-after-ms``, ``Retry-After`` seconds or HTTP date."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value.strip() else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, openai.APITimeoutError | openai.APIConnectionError):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code in RETRYABLE_STATUS


def _rejects_json_mode(exc: BaseException) -> bool:
    return isinstance(exc, openai.BadRequestError) and "response_format" in str(exc).lower()


@dataclass
class _Usage:
    attempts: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OpenAIJudge:
    """``Judge`` over an OpenAI-compatible chat-completions endpoint with image input."""

    def __init__(self, config: OpenAIJudgeConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self.prompt = JudgePrompt(config.dimensions, config.scale)
        self._rng = rng or random.Random()
        self._json_mode = config.json_mode != "off"
        self._images: dict[str, str] = {}

    @classmethod
    def from_env(cls, **overrides: Any) -> OpenAIJudge:
        """Endpoint, model and key from ``AESTHETIC_JUDGE_BASE_URL``, ``AESTHETIC_JUDGE_MODEL``, ``OPENAI_API_KEY``."""
        settings = {
            "base_url": os.environ.get(BASE_URL_ENV) or None,
            "model": os.environ.get(MODEL_ENV) or DEFAULT_MODEL,
            "api_key": os.environ.get(KEY_ENV) or None,
        }
        return cls(OpenAIJudgeConfig(**{**settings, **overrides}))

    @property
    def model(self) -> str:
        return self.config.model

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self.config.dimensions

    @property
    def prompt_version(self) -> str:
        return self.prompt.version

    # --- the public, synchronous entry point -------------------------------------------
    def judge_all(self, requests: Sequence[JudgeRequest], on_verdict: OnVerdict) -> None:
        if not requests:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            asyncio.run(self.judge_all_async(requests, on_verdict))
            return
        # called from inside an event loop (a notebook, an async server): run ours in a thread
        errors: list[BaseException] = []
        worker = threading.Thread(target=lambda: _capture(errors, asyncio.run, self.judge_all_async(requests, on_verdict)))
        worker.start()
        worker.join()
        if errors:
            raise errors[0]

    async def judge_all_async(self, requests: Sequence[JudgeRequest], on_verdict: OnVerdict) -> None:
        client = self.client()
        limit = asyncio.Semaphore(self.config.concurrency)

        async def one(index: int, request: JudgeRequest) -> None:
            async with limit:
                verdict = await self.judge_one(client, request)
            on_verdict(index, verdict)

        try:
            async with asyncio.TaskGroup() as group:
                for index, request in enumerate(requests):
                    group.create_task(one(index, request))
        finally:
            await client.close()

    def client(self) -> AsyncOpenAI:
        return AsyncOpenAI(
            base_url=self.config.base_url or None,
            api_key=self.config.api_key or NO_KEY,
            timeout=self.config.timeout_s,
            max_retries=0,
        )

    # --- one pair ---------------------------------------------------------------------
    async def judge_one(self, client: AsyncOpenAI, request: JudgeRequest) -> Verdict:
        started = time.perf_counter()
        usage = _Usage()

        def finish(**fields: Any) -> Verdict:
            return Verdict(
                latency_ms=(time.perf_counter() - started) * 1000, attempts=usage.attempts,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, **fields,
            )

        try:
            messages = self.messages(request)
        except OSError as exc:
            return finish(ok=False, error=f"cannot read image: {exc}", error_kind="transport")
        try:
            raw = await self._complete(client, messages, usage)
        except openai.OpenAIError as exc:
            return finish(ok=False, error=_describe_api_error(exc, usage.attempts), error_kind="transport")
        try:
            return finish(**_verdict_fields(raw, self._parse(raw), repaired=False))
        except ReplyError as first_error:
            repair = [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": self.prompt.repair(str(first_error))}]
            try:
                repaired_raw = await self._complete(client, repair, usage)
            except openai.OpenAIError as exc:
                return finish(ok=False, raw=raw, error=f"{first_error}; repair request failed: {_describe_api_error(exc, usage.attempts)}", error_kind="reply")
            try:
                return finish(**_verdict_fields(repaired_raw, self._parse(repaired_raw), repaired=True))
            except ReplyError as second_error:
                return finish(ok=False, raw=repaired_raw, error=f"invalid reply after one repair: {second_error} (first: {first_error})", error_kind="reply")

    def _parse(self, raw: str) -> JudgeReply:
        return parse_reply(raw, self.config.dimensions, self.config.scale)

    def messages(self, request: JudgeRequest) -> list[dict[str, Any]]:
        before, between, after = self.prompt.user_parts(request.prompt)
        content = [
            {"type": "text", "text": before},
            {"type": "image_url", "image_url": {"url": self._image(request.first)}},
            {"type": "text", "text": between},
            {"type": "image_url", "image_url": {"url": self._image(request.second)}},
            {"type": "text", "text": after},
        ]
        return [{"role": "system", "content": self.prompt.system()}, {"role": "user", "content": content}]

    def _image(self, image: ImageRef) -> str:
        if image.sha256 not in self._images:
            self._images[image.sha256] = encode_image(image.path, self.config.max_side)
        return self._images[image.sha256]

    async def _complete(self, client: AsyncOpenAI, messages: list[dict[str, Any]], usage: _Usage) -> str:
        """One chat completion with retries; returns the reply text (or the refusal text)."""
        while True:
            usage.attempts += 1
            try:
                reply = await client.chat.completions.create(**self._request_args(messages))
            except openai.OpenAIError as exc:
                if self._json_mode and self.config.json_mode == "auto" and _rejects_json_mode(exc):
                    self._json_mode = False  # this server has no JSON mode: ask plainly from now on
                    usage.attempts -= 1
                    continue
                if not is_retryable(exc) or usage.attempts >= self.config.max_attempts:
                    raise
                await asyncio.sleep(self.backoff_s(usage.attempts, exc))
                continue
            if reply.usage is not None:
                usage.prompt_tokens += reply.usage.prompt_tokens or 0
                usage.completion_tokens += reply.usage.completion_tokens or 0
            if not reply.choices:
                return ""  # parsed as "no JSON object in the reply"
            message = reply.choices[0].message
            return message.content or getattr(message, "refusal", None) or ""

    def _request_args(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.config.model, "messages": messages,
            "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
        }
        if self._json_mode:
            args["response_format"] = {"type": "json_object"}
        return args

    def backoff_s(self, attempt: int, exc: BaseException | None = None) -> float:
        """``Retry-After`` when the server sent one (capped), else exponential backoff with jitter."""
        asked = retry_after_s(exc) if exc is not None else None
        if asked is not None:
            return min(asked, self.config.retry_after_max_s)
        ceiling = min(self.config.backoff_max_s, self.config.backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)  # "equal jitter"


def _verdict_fields(raw: str, reply: JudgeReply, repaired: bool) -> dict[str, Any]:
    return {
        "ok": True, "scores_a": reply.scores["A"], "scores_b": reply.scores["B"], "winner": reply.winner,
        "reason": reply.reason, "raw": raw, "repaired": repaired,
    }


def _describe_api_error(exc: BaseException, attempts: int) -> str:
    status = getattr(exc, "status_code", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    return f"{what} after {attempts} attempt(s): {str(exc)[:300]}"


def _capture(errors: list[BaseException], fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except BaseException as exc:  # re-raised in the caller's thread
        errors.append(exc)
