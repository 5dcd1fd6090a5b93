"""``aesthetic serve``: score images over HTTP with a model loaded once.

``POST /score`` takes multipart form data — one or more ``files`` and a ``prompt``
(repeat ``prompt`` once per file to give each its own) — and returns one score per
configured dimension per image; ``best_of=true`` ranks the images by ``total``.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from PIL import Image, UnidentifiedImageError

MAX_IMAGES_PER_REQUEST = 256
RANK_DIMENSION = "total"

ScoreFn = Callable[[list[Any], list[str]], list[dict[str, float]]]


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


def create_app(score: ScoreFn, model_info: dict[str, Any]) -> FastAPI:
    app = FastAPI(title="aesthetic scorer", version="1")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": model_info}

    @app.post("/score")
    async def score_images(
        files: list[UploadFile] = File(..., description="PNG/JPEG/WebP images of any size and ratio"),
        prompt: list[str] = Form(..., description="the generation prompt (once, or once per file)"),
        best_of: bool = Form(False, description="rank the images by total, best first"),
    ) -> dict[str, Any]:
        if len(files) > MAX_IMAGES_PER_REQUEST:
            raise HTTPException(413, f"at most {MAX_IMAGES_PER_REQUEST} images per request, got {len(files)}")
        images, names = [], []
        for upload in files:
            data = await upload.read()
            try:
                image = Image.open(io.BytesIO(data))
                image.load()
            except (UnidentifiedImageError, OSError) as exc:
                raise HTTPException(422, f"file {upload.filename!r} is not a readable image: {exc}") from None
            images.append(image.convert("RGB"))
            names.append(upload.filename or f"image-{len(names)}")
        try:
            texts = prompts_for(prompt, len(images))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        scores = score(images, texts)
        results = [{"image": n, "scores": s} for n, s in zip(names, scores, strict=True)]
        body: dict[str, Any] = {"model": model_info, "results": results}
        if best_of:
            body["ranking"] = rank_best_of(names, scores)
        return body

    return app
