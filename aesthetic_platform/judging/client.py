"""A VLM judge behind any OpenAI-compatible endpoint, through the async ``openai`` SDK.

Images travel as base64 PNG data URLs resized to ``max_side``. Calls run with bounded
concurrency; transient failures (429, 5xx, timeouts, lost connections) are retried by
the SDK (see :mod:`aesthetic_platform.llm`), and every HTTP attempt is counted. JSON
mode (``response_format``) is used when the server accepts it; in ``auto`` mode a
server that rejects it is asked again without it, once per judge. A reply that fails
validation gets exactly one repair request; a pair that still fails comes back as a
failed ``Verdict`` with its reason — never with a made-up score.
"""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import openai
from openai import AsyncOpenAI
from PIL import Image

from aesthetic_platform.images import load_image
from aesthetic_platform.judging.base import ImageRef, JudgeRequest, OnVerdict, Verdict
from aesthetic_platform.judging.config import BASE_URL_ENV, JudgeConfig
from aesthetic_platform.judging.prompt import JudgePrompt
from aesthetic_platform.judging.reply import JudgeReply, ReplyError, parse_reply
from aesthetic_platform.llm import Attempts, async_openai_client, count_attempts


def encode_image(path: str, max_side: int) -> str:
    """A PNG data URL of the image, downscaled so its longest side is at most ``max_side``."""
    rgb = load_image(path, fit_pixels=max_side * max_side)
    rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    rgb.save(buffer, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _rejects_json_mode(exc: BaseException) -> bool:
    return isinstance(exc, openai.BadRequestError) and "response_format" in str(exc).lower()


@dataclass
class _Usage:
    attempts: Attempts
    prompt_tokens: int = 0
    completion_tokens: int = 0


class OpenAIJudge:
    """``Judge`` over an OpenAI-compatible chat-completions endpoint with image input."""

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.prompt = JudgePrompt(tuple(config.dimensions), config.scale)
        self._model = config.judge_model()
        self._json_mode = config.json_mode != "off"
        self._images: dict[str, str] = {}

    @property
    def model(self) -> str:
        return self._model

    @property
    def fingerprint(self) -> str:
        return self.config.reply_fingerprint()

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(self.config.dimensions)

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
        return async_openai_client(self.config, BASE_URL_ENV)

    # --- one pair ---------------------------------------------------------------------
    async def judge_one(self, client: AsyncOpenAI, request: JudgeRequest) -> Verdict:
        started = time.perf_counter()
        with count_attempts() as attempts:
            usage = _Usage(attempts)
            return await self._judge_counted(client, request, started, usage)

    async def _judge_counted(self, client: AsyncOpenAI, request: JudgeRequest, started: float, usage: _Usage) -> Verdict:

        def finish(**fields: Any) -> Verdict:
            return Verdict(
                latency_ms=(time.perf_counter() - started) * 1000, attempts=usage.attempts.count,
                prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, **fields,
            )

        try:
            messages = self.messages(request)
        except OSError as exc:
            return finish(ok=False, error=f"cannot read image: {exc}", error_kind="transport")
        try:
            raw = await self._complete(client, messages, usage)
        except openai.OpenAIError as exc:
            return finish(ok=False, error=_describe_api_error(exc, usage.attempts.count), error_kind="transport")
        try:
            return finish(**_verdict_fields(raw, self._parse(raw), repaired=False))
        except ReplyError as first_error:
            repair = [*messages, {"role": "assistant", "content": raw}, {"role": "user", "content": self.prompt.repair(str(first_error))}]
            try:
                repaired_raw = await self._complete(client, repair, usage)
            except openai.OpenAIError as exc:
                failure = _describe_api_error(exc, usage.attempts.count)
                return finish(ok=False, raw=raw, error=f"{first_error}; repair request failed: {failure}", error_kind="reply")
            try:
                return finish(**_verdict_fields(repaired_raw, self._parse(repaired_raw), repaired=True))
            except ReplyError as second_error:
                error = f"invalid reply after one repair: {second_error} (first: {first_error})"
                return finish(ok=False, raw=repaired_raw, error=error, error_kind="reply")

    def _parse(self, raw: str) -> JudgeReply:
        return parse_reply(raw, self.dimensions, self.config.scale)

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
        """One chat completion (the SDK retries transient failures); returns the reply text or refusal."""
        try:
            reply = await client.chat.completions.create(**self._request_args(messages))
        except openai.BadRequestError as exc:
            if not (self._json_mode and self.config.json_mode == "auto" and _rejects_json_mode(exc)):
                raise
            self._json_mode = False  # this server has no JSON mode: ask plainly from now on
            usage.attempts.count -= 1
            reply = await client.chat.completions.create(**self._request_args(messages))
        if reply.usage is not None:
            usage.prompt_tokens += reply.usage.prompt_tokens or 0
            usage.completion_tokens += reply.usage.completion_tokens or 0
        if not reply.choices:
            return ""  # parsed as "no JSON object in the reply"
        message = reply.choices[0].message
        return message.content or getattr(message, "refusal", None) or ""

    def _request_args(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": self.model, "messages": messages,
            "temperature": self.config.temperature, "max_tokens": self.config.max_tokens,
        }
        if self._json_mode:
            args["response_format"] = {"type": "json_object"}
        return args


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
    except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
        errors.append(exc)
