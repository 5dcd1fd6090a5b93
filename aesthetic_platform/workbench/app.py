"""The workbench HTTP API (seed 001 §3.2) and its one static page.

Every endpoint that hands out images uses one shape, ``BatchOut``: the prompt, and
per image its URL, seed and generation parameters (plus the assist score, or null).
Images are served only from the workbench image folder; any path that resolves
outside it is refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, File, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.embeddings.labelling import labelling_router
from aesthetic_platform.generation.sizes import size_for_ratio
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts import PromptFileError
from aesthetic_platform.schemas import RATIOS
from aesthetic_platform.workbench.assist import AssistScorer, ScoreFn
from aesthetic_platform.workbench.batches import (
    MAX_SEEDS_PER_BATCH,
    GeneratedBatch,
    WorkbenchSettings,
    build_workbench_generator,
)
from aesthetic_platform.workbench.selections import Selection, images_dir, selections_path
from aesthetic_platform.workbench.session import GeneratorFactory, PromptView, Workbench, WorkbenchError

IMAGE_ROUTE = "/images"
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerateRequest(_Body):
    prompt_id: str | None = Field(default=None, description="default: the current prompt")
    seeds: list[int] | None = Field(default=None, max_length=MAX_SEEDS_PER_BATCH, description="default: fresh random seeds")


class SubmitRequest(_Body):
    batch_id: str
    golden_seeds: list[int] = Field(default_factory=list, description="empty = every image is bad")
    annotator: str | None = None


class UndoRequest(_Body):
    annotator: str | None = None


def prompt_out(view: PromptView | None) -> dict[str, Any] | None:
    if view is None:
        return None
    spec = view.prompt
    return {"prompt_id": spec.prompt_id, "text": spec.text, "language": spec.language, "index": view.index, "total": view.total}


def image_url(root: DataRoot, path: str) -> str:
    return f"{IMAGE_ROUTE}/{Path(path).relative_to(images_dir(root)).as_posix()}"


def batch_out(bench: Workbench, batch: GeneratedBatch, prefetched: bool = False) -> dict[str, Any]:
    """The one response shape for images: URL, seed and parameters of each."""
    index = next((i for i, p in enumerate(bench.prompts) if p.prompt_id == batch.prompt.prompt_id), -1)
    view = PromptView(batch.prompt, index, len(bench.prompts))
    return {
        "batch_id": batch.batch_id,
        "prompt": prompt_out(view),
        "images": [
            {"url": image_url(bench.root, image.path), "seed": image.seed, "score": image.score, "params": batch.params}
            for image in batch.images
        ],
        "generator": batch.generator,
        "model_version": batch.model_version,
        "score_model": batch.score_model,
        "prefetched": prefetched,
        "generated_at": batch.generated_at.isoformat(),
    }


def selection_out(record: Selection) -> dict[str, Any]:
    return record.model_dump(mode="json")


def safe_image_path(root: DataRoot, relative: str) -> Path:
    """Resolve a requested image under the image folder; refuse anything that escapes it."""
    base = images_dir(root).resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base) or candidate == base:
        raise HTTPException(status_code=403, detail=f"refused: {relative!r} is outside the workbench image folder")
    if candidate.suffix.lower() != ".png" or not candidate.is_file():
        raise HTTPException(status_code=404, detail=f"no such image: {relative!r}")
    return candidate


def _static_dir() -> Path:
    return Path(str(resources.files("aesthetic_platform.workbench") / "static"))


def create_app(
    root: DataRoot,
    annotator: str,
    scorer: AssistScorer | ScoreFn | None | str = "auto",
    generator_factory: GeneratorFactory = build_workbench_generator,
) -> FastAPI:
    """The workbench app over one data root. ``scorer``: 'auto' (the registered champion), a callable, or None."""
    root.ensure()
    bench = Workbench(root, annotator, scorer=scorer, generator_factory=generator_factory)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        bench.close()

    app = FastAPI(title="aesthetic_platform golden-seed workbench", version="1", lifespan=lifespan)
    app.state.workbench = bench
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    app.include_router(labelling_router(root))  # the Labels tab: multi-annotator labels in the embedding and label store

    @app.exception_handler(WorkbenchError)
    async def _refused(_: Request, exc: WorkbenchError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content={"detail": exc.message})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((_static_dir() / "index.html").read_text(encoding="utf-8"))

    @app.get("/state")
    def state() -> dict[str, Any]:
        """Everything the page needs to restore itself after a reload."""
        current = bench.current_batch()
        return {
            "annotator": bench.annotator,
            "settings": bench.settings.model_dump() if bench.settings else None,
            "defaults": WorkbenchSettings().model_dump(),
            "ratios": list(RATIOS),
            "initialised": bench.generator is not None,
            "generator": bench.generator.name if bench.generator else None,
            "prompts": len(bench.prompts),
            "prompt_file": bench.prompt_file,
            "prompt": prompt_out(bench.current_prompt()),
            "batch": batch_out(bench, current) if current else None,
            "assist": bench.assist.as_dict(),
            "prefetch": bench.prefetch_state(),
            "selections_log": str(selections_path(root)),
        }

    @app.post("/upload_prompts", response_model=dict[str, Any])  # the refusals (JSONResponse) bypass it
    async def upload_prompts(file: UploadFile = File(...)) -> dict[str, Any] | JSONResponse:
        """A CSV/JSON prompt file; a malformed one is refused with the file, line/record and field."""
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        name = file.filename or "upload"
        if len(data) > MAX_UPLOAD_BYTES:
            detail = f"{name}: larger than {MAX_UPLOAD_BYTES} bytes"
            return JSONResponse(status_code=413, content={"detail": detail, "file": name, "field": "file"})
        try:
            specs = bench.upload_prompts(data, name)
        except PromptFileError as exc:  # every failure to read the file is one (prompts/files.py)
            body = {"detail": str(exc), "file": name, "location": exc.location, "field": exc.field}
            return JSONResponse(status_code=422, content=body)
        return {"prompts": len(specs), "file": name, "first": [s.text for s in specs[:3]]}

    @app.post("/init_model")
    def init_model(settings: WorkbenchSettings) -> dict[str, Any]:
        """Load the chosen generator and the assist scorer; later batches use them."""
        bench.init_model(settings)
        width, height = size_for_ratio(settings.ratio, settings.pixel_budget)
        return {
            "generator": bench.generator.name if bench.generator else None,
            "settings": settings.model_dump(),
            "size": {"width": width, "height": height},
            "assist": bench.assist.as_dict(),
        }

    @app.post("/get_next_prompt")
    def get_next_prompt() -> dict[str, Any]:
        view = bench.next_prompt()
        return {"prompt": prompt_out(view), "done": view is None}

    @app.post("/generate_batch")
    def generate_batch(request: GenerateRequest | None = None) -> dict[str, Any]:
        request = request or GenerateRequest()
        batch, prefetched = bench.generate_batch(request.prompt_id, request.seeds)
        return batch_out(bench, batch, prefetched)

    @app.post("/submit_selection")
    def submit_selection(request: SubmitRequest) -> dict[str, Any]:
        record = bench.submit(request.batch_id, request.golden_seeds, request.annotator)
        return {"submission_id": record.submission_id, "record": selection_out(record)}

    @app.post("/undo_last")
    def undo_last(request: UndoRequest | None = None) -> dict[str, Any]:
        """Withdraw the annotator's last submission; its batch comes back for re-judging while it is in memory."""
        undone = bench.undo((request or UndoRequest()).annotator)
        try:
            batch = batch_out(bench, bench.batch(undone.batch_id))
        except WorkbenchError:
            batch = None
        return {"undone": selection_out(undone), "batch": batch}

    @app.get(IMAGE_ROUTE + "/{relative:path}", include_in_schema=False)
    def image(relative: str) -> FileResponse:
        return FileResponse(safe_image_path(root, relative), media_type="image/png")

    return app
