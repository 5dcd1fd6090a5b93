"""The web builder: upload a ZIP, watch the stages live, adjust crops, download the packaged dataset.

One job per upload, in its own work folder under ``<data root>/lora/<job_id>``. The job's
state lives in that folder's ``job.json`` (written by the pipeline), so the page, a reload,
a second browser tab and a restarted server all read the same truth; the live progress
stream (Server-Sent Events) simply follows that file. Jobs run one at a time in a
background thread; a job found queued or running when the server starts is queued again
(finished stages are skipped by their fingerprints).

Uploads are streamed to disk in chunks and cut off at ``max_upload_bytes`` (413). Files
are served only by image id from a job's own tables, never by a path from the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import queue
import shutil
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.atomic import write_json
from aesthetic_platform.lora.config import CaptionConfig, LoraConfig, PackageConfig
from aesthetic_platform.lora.package import zip_name
from aesthetic_platform.lora.pipeline import STAGES, JobBusyError, JobError, init_job, read_job, run_stages, set_crop_box, set_state
from aesthetic_platform.lora.schemas import CROPS_DIR, INGEST_RECORDS, INGEST_TABLE
from aesthetic_platform.lora.tables import MANIFEST_RECORDS, MANIFEST_TABLE
from aesthetic_platform.paths import DataRoot, check_key

DEFAULT_MAX_UPLOAD = 2 * 1024 * 1024 * 1024
CHUNK = 1 << 20
UPLOAD_NAME = "upload.zip"
SETTINGS_FILE = "settings.json"
BUSY = ("queued", "running")
FINISHED = ("done", "failed", "partial")
SSE_POLL_S = 0.2
SSE_PING_S = 15.0
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


#: What the page's settings form edits, by section of ``LoraConfig``; every other knob is the server's base config.
#: The page has one trigger word, the package's; the captions' trigger follows it.
PAGE_FIELDS: dict[str, set[str]] = {
    "caption": {"base_url", "models", "prompt", "api_key_env", "max_side"},
    "package": {"trigger", "class_word", "repeats"},
}
#: The flat names the page used before its settings were nested (a settings.json or client of that time still works).
FLAT_NAMES = {
    "trigger": ("package", "trigger"), "class_word": ("package", "class_word"), "repeats": ("package", "repeats"),
    "caption_base_url": ("caption", "base_url"), "caption_models": ("caption", "models"), "caption_prompt": ("caption", "prompt"),
    "caption_api_key_env": ("caption", "api_key_env"), "caption_max_side": ("caption", "max_side"),
}


class WebSettings(BaseModel):
    """The page's settings form: the kohya folder (``PackageConfig``) and the caption endpoint (``CaptionConfig``).

    The sections are the core configs themselves, so their defaults and limits are the CLI's and
    Dagster's. Only the ``PAGE_FIELDS`` of each can be set here: no API key is ever saved (it stays
    in the environment), and knobs the page does not show keep the server's base config.
    """

    model_config = ConfigDict(extra="forbid")

    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    package: PackageConfig = Field(default_factory=PackageConfig)

    @model_validator(mode="before")
    @classmethod
    def _page_fields_only(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = {key: dict(value) if isinstance(value, dict) else value for key, value in data.items()}
        for flat, (section, name) in FLAT_NAMES.items():
            if flat in data:
                data.setdefault(section, {})[name] = data.pop(flat)
        for section, allowed in PAGE_FIELDS.items():
            given = data.get(section)
            if isinstance(given, dict) and (unknown := sorted(set(given) - allowed)):
                raise ValueError(f"{section}: the settings page does not set {', '.join(unknown)} (it sets {', '.join(sorted(allowed))})")
        return data

    @classmethod
    def of(cls, config: LoraConfig) -> WebSettings:
        """What the page shows of a config."""
        return cls.model_validate(config.model_dump(include=PAGE_FIELDS))

    def page(self) -> dict[str, Any]:
        return self.model_dump(include=PAGE_FIELDS)

    def apply(self, base: LoraConfig) -> LoraConfig:
        stored = base.model_dump()
        caption = {
            **stored["caption"], **self.caption.model_dump(include=PAGE_FIELDS["caption"]), "base_url": self.caption.base_url.strip(),
            "models": [m.strip() for m in self.caption.models if m.strip()], "trigger": self.package.trigger,
        }
        package = {**stored["package"], **self.package.model_dump(include=PAGE_FIELDS["package"])}
        return LoraConfig.model_validate({**stored, "caption": caption, "package": package})


class CropRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_id: str
    box: list[int] = Field(min_length=4, max_length=4, description="[left, top, right, bottom] in stored-image pixels, square")


def _static_dir() -> Path:
    return Path(str(resources.files("aesthetic_platform.lora") / "static"))


class Jobs:
    """The jobs folder and the one background worker that runs them."""

    def __init__(self, root: DataRoot, base_config: LoraConfig) -> None:
        self.folder = root.lora
        self.folder.mkdir(parents=True, exist_ok=True)
        self.base_config = base_config
        # one daemon worker: a stopped server does not wait for a running job; the job resumes at the next start
        self.queue: queue.Queue[tuple[Path, tuple[str, ...]] | None] = queue.Queue()
        self.worker = threading.Thread(target=self._work, name="lora-jobs", daemon=True)
        self.worker.start()
        self._lock = threading.Lock()

    def work_dir(self, job_id: str) -> Path:
        try:
            check_key("job id", job_id)
        except ValueError as exc:
            raise HTTPException(status_code=404, detail=str(exc)) from None
        folder = self.folder / job_id
        if not (folder / "job.json").is_file():
            raise HTTPException(status_code=404, detail=f"no job {job_id!r}")
        return folder

    # --- settings ---------------------------------------------------------------------------------
    def settings(self) -> WebSettings:
        path = self.folder / SETTINGS_FILE
        if path.exists():
            with contextlib.suppress(ValueError):
                return WebSettings.model_validate_json(path.read_text(encoding="utf-8"))
        return WebSettings.of(self.base_config)

    def save_settings(self, settings: WebSettings) -> None:
        write_json(self.folder / SETTINGS_FILE, settings.page())

    # --- jobs -------------------------------------------------------------------------------------------
    def new_job_id(self) -> str:
        return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"

    def submit(self, job_id: str, stages: Sequence[str] = STAGES) -> None:
        work_dir = self.folder / job_id
        set_state(work_dir, "queued")
        self.queue.put((work_dir, tuple(stages)))

    def _work(self) -> None:
        while (item := self.queue.get()) is not None:
            self._run(*item)

    def stop(self) -> None:
        self.queue.put(None)

    @staticmethod
    def _run(work_dir: Path, stages: tuple[str, ...]) -> None:
        try:
            run_stages(work_dir, stages)
        except JobBusyError as exc:  # another process (a CLI build, Dagster) holds the folder: say so instead of waiting forever
            set_state(work_dir, "failed", str(exc))
        except Exception:  # noqa: BLE001 - the failure is already in job.json (state, stage error) for the page to show
            return

    def resume_interrupted(self) -> list[str]:
        """Jobs a stopped server left queued or running go back in the queue."""
        resumed = []
        for job in self.list():
            if job.get("state") in BUSY:
                self.submit(job["job_id"])
                resumed.append(job["job_id"])
        return resumed

    def list(self) -> list[dict[str, Any]]:
        jobs = []
        for folder in sorted(self.folder.iterdir(), reverse=True):
            if folder.is_dir() and (folder / "job.json").is_file():
                with contextlib.suppress(ValueError, OSError):
                    jobs.append(public_job(read_job(folder)))
        return jobs


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """What the page sees of job.json: no local paths of the input, no tracebacks."""
    stages = {
        name: {k: state.get(k) for k in ("status", "done", "total", "message", "error", "recomputed", "seconds", "summary")}
        for name, state in job.get("stages", {}).items()
    }
    config = job.get("config") or {}
    return {
        "job_id": job.get("job_id", ""), "source_name": job.get("source_name", ""), "created_at": job.get("created_at", ""),
        "updated_at": job.get("updated_at", ""), "state": job.get("state", "new"), "error": job.get("error", ""),
        "stages": stages, "caption_endpoint": (config.get("caption") or {}).get("base_url", ""),
    }


def job_items(job_id: str, work_dir: Path) -> list[dict[str, Any]]:
    """The preview grid: every file of the upload from the manifest, kept and dropped, with image URLs."""
    path = work_dir / MANIFEST_TABLE
    if not path.exists():
        return []
    stored = {r.image_id: r.path for r in INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))}
    items = []
    for row in MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(path)):
        item = row.model_dump()
        item["source_url"] = f"/api/jobs/{job_id}/source/{row.image_id}" if stored.get(row.image_id) else ""
        item["crop_url"] = f"/api/jobs/{job_id}/crop/{row.image_id}?v={row.image_sha256[:12]}" if row.status == "kept" else ""
        items.append(item)
    return items


def create_app(root: DataRoot, base_config: LoraConfig | None = None, max_upload_bytes: int = DEFAULT_MAX_UPLOAD) -> FastAPI:
    """The builder over one data root; ``base_config`` holds the knobs the page does not show (dedup, crop, ingest)."""
    jobs = Jobs(root, base_config or LoraConfig())

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        jobs.stop()

    app = FastAPI(title="aesthetic_platform LoRA dataset builder", version="1", lifespan=lifespan)
    app.state.jobs = jobs
    app.state.resumed = jobs.resume_interrupted()
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")

    @app.exception_handler(JobError)
    async def _refused(_: Request, exc: JobError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse((_static_dir() / "index.html").read_text(encoding="utf-8"))

    @app.get("/api/settings")
    def get_settings() -> dict[str, Any]:
        return {"settings": jobs.settings().page(), "max_upload_bytes": max_upload_bytes}

    @app.put("/api/settings")
    def put_settings(settings: WebSettings) -> dict[str, Any]:
        jobs.save_settings(settings)
        return {"settings": settings.page(), "max_upload_bytes": max_upload_bytes}

    @app.get("/api/jobs")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": jobs.list()}

    @app.post("/api/jobs", status_code=201)
    async def upload(request: Request, name: str = "upload.zip") -> JSONResponse:
        """The request body is the ZIP itself, written to disk chunk by chunk; over the limit it is refused (413)."""
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_upload_bytes:
            return _too_large(int(declared), max_upload_bytes)
        job_id = jobs.new_job_id()
        work_dir = jobs.folder / job_id
        work_dir.mkdir(parents=True)
        partial = work_dir / f".{UPLOAD_NAME}.part"
        received = 0
        try:
            with open(partial, "wb") as handle:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > max_upload_bytes:
                        shutil.rmtree(work_dir, ignore_errors=True)
                        return _too_large(received, max_upload_bytes)
                    handle.write(chunk)
            if received == 0:
                raise HTTPException(status_code=400, detail="the upload is empty: send a ZIP of photos as the request body")
            with open(partial, "rb") as handle:
                if handle.read(4) not in _ZIP_MAGIC:
                    raise HTTPException(status_code=415, detail=f"{name[:200]!r} is not a ZIP archive")
            partial.rename(work_dir / UPLOAD_NAME)
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        config = jobs.settings().apply(jobs.base_config)
        init_job(work_dir, work_dir / UPLOAD_NAME, config, job_id=job_id, source_name=Path(name).name[:200] or UPLOAD_NAME)
        jobs.submit(job_id)
        return JSONResponse(status_code=201, content={"job": public_job(read_job(work_dir)), "bytes": received})

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        work_dir = jobs.work_dir(job_id)
        job = public_job(read_job(work_dir))
        package = job["stages"].get("package", {})
        job["download_url"] = f"/api/jobs/{job_id}/download" if package.get("status") == "done" else ""
        job["items"] = job_items(job_id, work_dir)
        return job

    @app.get("/api/jobs/{job_id}/events")
    async def events(job_id: str) -> StreamingResponse:
        """Server-Sent Events: a ``job`` event whenever job.json changes, ``end`` once the job is no longer running."""
        work_dir = jobs.work_dir(job_id)

        async def stream() -> AsyncIterator[str]:
            last = ""
            quiet = 0.0
            while True:
                job = public_job(read_job(work_dir))
                payload = json.dumps(job, sort_keys=True)
                if payload != last:
                    last, quiet = payload, 0.0
                    yield f"event: job\ndata: {payload}\n\n"
                if job["state"] not in BUSY:
                    yield f"event: end\ndata: {json.dumps({'state': job['state']})}\n\n"
                    return
                await asyncio.sleep(SSE_POLL_S)
                quiet += SSE_POLL_S
                if quiet >= SSE_PING_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store"})

    @app.post("/api/jobs/{job_id}/crop", status_code=202)
    def adjust_crop(job_id: str, request: CropRequest) -> dict[str, Any]:
        """Store a manual square crop box and recompute crops, captions and package for this job."""
        work_dir = jobs.work_dir(job_id)
        with jobs._lock:
            if read_job(work_dir).get("state") in BUSY:
                raise HTTPException(status_code=409, detail="the job is still processing; adjust the crop when it is done")
            set_crop_box(work_dir, request.image_id, request.box)
            jobs.submit(job_id, ("crops", "captions", "package"))
        return {"job": public_job(read_job(work_dir)), "image_id": request.image_id, "box": request.box}

    @app.get("/api/jobs/{job_id}/source/{image_id}", include_in_schema=False)
    def source_image(job_id: str, image_id: str) -> FileResponse:
        work_dir = jobs.work_dir(job_id)
        stored = {r.image_id: r.path for r in INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))}
        if not stored.get(image_id):
            raise HTTPException(status_code=404, detail=f"no stored image {image_id!r} in job {job_id}")
        return FileResponse(work_dir / stored[image_id])

    @app.get("/api/jobs/{job_id}/crop/{image_id}", include_in_schema=False)
    def crop_image(job_id: str, image_id: str) -> FileResponse:
        work_dir = jobs.work_dir(job_id)
        path = work_dir / CROPS_DIR / f"{_image_key(image_id)}.png"
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"no crop of {image_id!r} in job {job_id}")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/api/jobs/{job_id}/download")
    def download(job_id: str) -> FileResponse:
        work_dir = jobs.work_dir(job_id)
        job = read_job(work_dir)
        if job.get("stages", {}).get("package", {}).get("status") != "done":
            raise HTTPException(status_code=409, detail="the dataset is not packaged yet")
        name = zip_name(LoraConfig.model_validate(job.get("config") or {}).package)
        return FileResponse(work_dir / name, media_type="application/zip", filename=name)

    return app


def _image_key(image_id: str) -> str:
    try:
        return check_key("image id", image_id)
    except ValueError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


def _too_large(size: int, limit: int) -> JSONResponse:
    detail = f"upload refused: {size:,} bytes is over the {limit:,}-byte limit ({limit / 2**20:.0f} MiB)"
    return JSONResponse(status_code=413, content={"detail": detail, "limit": limit})
