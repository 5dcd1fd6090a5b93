"""``aesthetic serve``: score images over HTTP with a model loaded once.

``POST /score`` takes multipart form data — one or more ``files`` and a ``prompt``
(repeat ``prompt`` once per file to give each its own) — and returns one score per
configured dimension per image; ``best_of=true`` ranks the images by ``total``.

Every request is held to a budget (``RequestLimits``, shown by ``GET /health``): the
body size is counted while it arrives, the number of files is capped while the form is
parsed, each file's declared canvas and the request's total are checked from the image
headers before any pixel is decoded, and each image is reduced to the model's input
size as soon as it is decoded (``aesthetic_platform.images``). Requests are decoded and
scored one at a time, so the server's memory is bounded by one request's budget.

Bad input is answered with a 4xx and a JSON body ``{"detail": ..., "field": ...,
"file": ..., "index": ...}`` naming what was refused; the server keeps answering.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from aesthetic_platform.images import MAX_IMAGE_PIXELS, ImageInputError, ImageTooLargeError, image_size, load_image

RANK_DIMENSION = "total"
MIB = 1024 * 1024


@dataclass(frozen=True)
class RequestLimits:
    """What one ``POST /score`` may cost; anything over it is refused with 413 before decoding."""

    max_files: int = 32
    max_request_bytes: int = 64 * MIB
    max_image_pixels: int = MAX_IMAGE_PIXELS
    max_total_pixels: int = 2 * MAX_IMAGE_PIXELS

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class ScoringModel(Protocol):
    """What the server needs from a model: ``aesthetic_platform.scoring.Scorer`` provides it."""

    @property
    def input_pixels(self) -> int: ...

    def check_prompts(self, prompts: Sequence[str]) -> list[str]: ...

    def score(self, images: Sequence[Any], prompts: Sequence[str]) -> list[dict[str, float]]: ...


class RequestRefused(Exception):
    """A 4xx answer naming the field, file and index at fault."""

    def __init__(self, status: int, detail: str, field: str | None = None, file: str | None = None, index: int | None = None):
        super().__init__(detail)
        self.status = status
        self.body = {"detail": detail, **{k: v for k, v in (("field", field), ("file", file), ("index", index)) if v is not None}}


def rank_best_of(names: list[str], scores: list[dict[str, float]], dimension: str = RANK_DIMENSION) -> list[dict[str, Any]]:
    """Images ranked by ``dimension``, best first (seed 000 Q3: pick the highest of N)."""
    if scores and dimension not in scores[0]:
        raise ValueError(f"the model has no {dimension!r} head; dimensions are {sorted(scores[0])}")
    order = sorted(range(len(scores)), key=lambda i: scores[i][dimension], reverse=True)
    return [{"rank": rank + 1, "image": names[i], "scores": scores[i]} for rank, i in enumerate(order)]


def prompts_for(prompts: list[str], count: int) -> list[str]:
    """One prompt for all images, or exactly one per image."""
    if len(prompts) == 1:
        return prompts * count
    if len(prompts) != count:
        raise ValueError(f"give one prompt for all images or one per image: got {len(prompts)} prompts for {count} images")
    return prompts


class BodyLimit:
    """ASGI middleware: refuse a request body over ``max_bytes`` with a JSON 413, counting as it arrives.

    A declared ``Content-Length`` over the limit is refused before the body is read; a
    body without one (chunked) is cut off once it passes the limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    def _refusal(self) -> RequestRefused:
        return RequestRefused(413, f"request body over the limit of {self.max_bytes:,} bytes", field="files")

    async def _answer(self, send: Send, refused: RequestRefused) -> None:
        body = json.dumps(refused.body).encode("utf-8")
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": refused.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._answer(send, self._refusal())
            return
        received, over, started = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                return  # the app's answer to a truncated body is replaced by the 413 below
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over and not started:
            await self._answer(send, self._refusal())


def create_app(scorer: ScoringModel, model_info: dict[str, Any], limits: RequestLimits | None = None) -> FastAPI:
    limits = limits or RequestLimits()
    app = FastAPI(
        title="aesthetic scorer",
        version="1",
        form_limits={"max_files": limits.max_files, "max_fields": limits.max_files + 2},
    )
    app.add_middleware(BodyLimit, max_bytes=limits.max_request_bytes)
    one_at_a_time = threading.Lock()  # decode and score one request at a time: memory stays within one budget

    @app.exception_handler(RequestRefused)
    async def _refused(_: Request, exc: RequestRefused) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_info, "limits": limits.as_dict(), "input_pixels": scorer.input_pixels}

    @app.post("/score")
    async def score_images(
        files: list[UploadFile] = File(..., description="PNG/JPEG/WebP images of any size and ratio"),
        prompt: list[str] = Form(..., description="the generation prompt (once, or once per file)"),
        best_of: bool = Form(False, description="rank the images by total, best first"),
    ) -> dict[str, Any]:
        names = [upload.filename or f"image-{index}" for index, upload in enumerate(files)]
        if len(files) > limits.max_files:
            raise RequestRefused(413, f"at most {limits.max_files} images per request, got {len(files)}", field="files")
        try:
            texts = scorer.check_prompts(prompts_for(prompt, len(files)))
        except ValueError as exc:
            raise RequestRefused(422, str(exc), field="prompt", index=getattr(exc, "index", None)) from None
        scores = await run_in_threadpool(_decode_and_score, scorer, files, names, texts, limits, one_at_a_time)
        results = [{"image": n, "scores": s} for n, s in zip(names, scores, strict=True)]
        body: dict[str, Any] = {"model": model_info, "results": results}
        if best_of:
            body["ranking"] = rank_best_of(names, scores)
        return body

    return app


def _refuse_image(exc: ImageInputError, index: int, name: str) -> RequestRefused:
    status = 413 if isinstance(exc, ImageTooLargeError) else 422
    return RequestRefused(status, f"file {name!r}: {exc.problem}", field="files", file=name, index=index)


def _decode_and_score(
    scorer: ScoringModel,
    files: list[UploadFile],
    names: list[str],
    texts: list[str],
    limits: RequestLimits,
    one_at_a_time: threading.Lock,
) -> list[dict[str, float]]:
    """Headers first (every file, and the request's total pixels; no lock, nothing decoded), then under the lock
    decode one file at a time, reduced at once, and score."""
    total = 0
    for index, (upload, name) in enumerate(zip(files, names, strict=True)):
        try:
            width, height = image_size(upload.file, name=name, max_pixels=limits.max_image_pixels)
        except ImageInputError as exc:
            raise _refuse_image(exc, index, name) from None
        total += width * height
    if total > limits.max_total_pixels:
        raise RequestRefused(
            413, f"the images hold {total:,} pixels together; the limit is {limits.max_total_pixels:,} per request", field="files"
        )
    with one_at_a_time:
        images: list[Image.Image] = []
        for index, (upload, name) in enumerate(zip(files, names, strict=True)):
            try:
                images.append(load_image(upload.file, name=name, fit_pixels=scorer.input_pixels, max_pixels=limits.max_image_pixels))
            except ImageInputError as exc:
                raise _refuse_image(exc, index, name) from None
            finally:
                upload.file.close()  # the spooled upload is not needed once its reduced pixels are in memory
        try:
            return scorer.score(images, texts)
        except ImageInputError as exc:
            index = exc.index if exc.index is not None else 0
            raise _refuse_image(exc, index, names[index]) from None
        except ValueError as exc:
            raise RequestRefused(422, str(exc), field="prompt", index=getattr(exc, "index", None)) from None
