"""The builder's five stages over one work folder, with their state in ``job.json``.

Every surface (the CLI, the web app, the Dagster assets) runs the stages through
``run_stage``, so they share one notion of what is done. Each stage gets a fingerprint:
a hash of its own settings and the fingerprint of the stage before it (ingest: of the
source's names, sizes and modification times; crops: also of the manual crop boxes). A
stage whose fingerprint and outputs are unchanged is not run again; a changed dedup
threshold therefore re-runs dedup, crops, captions and package, never ingest, and a moved
crop box re-runs crops, captions (only the changed crop is captioned again) and package.

``job.json`` is rewritten atomically on every change (stage start, throttled progress,
finish, failure), so a page reload, a second process or a restarted server reads the
state from disk. Two runs on one work folder at once are refused (a file lock).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from aesthetic_platform.atomic import held_exclusively, write_json
from aesthetic_platform.lora.captions import caption_crops, settings_fingerprint
from aesthetic_platform.lora.config import LoraConfig
from aesthetic_platform.lora.package import package, zip_name
from aesthetic_platform.lora.schemas import (
    CROP_RECORDS,
    CROPS_TABLE,
    DEDUP_DECISIONS,
    DEDUP_TABLE,
    INGEST_RECORDS,
    INGEST_TABLE,
)
from aesthetic_platform.lora.tables import CAPTIONS_TABLE, MANIFEST_TABLE

STAGES = ("ingest", "dedup", "crops", "captions", "package")
JOB_FILE = "job.json"
PACKAGE_PATHS = ("dataset_dir", "image_dir", "manifest", "zip")
OVERRIDES_FILE = "crop_overrides.json"
LOCK_FILE = ".run.lock"
#: Bumped when a stage's meaning changes so old fingerprints stop matching.
PIPELINE_VERSION = "1"
#: Progress is written to job.json at most this often (a stage's first and last tick always).
PROGRESS_EVERY_S = 0.25
MAX_ERROR = 2000

Progress = Callable[[str, int, int, str], None]
Box = tuple[int, int, int, int]

_STATE_LOCK = threading.RLock()
_OUTPUTS = {
    "ingest": (INGEST_TABLE,),
    "dedup": (DEDUP_TABLE,),
    "crops": (CROPS_TABLE,),
    "captions": (CAPTIONS_TABLE,),
    "package": (MANIFEST_TABLE,),
}


class JobError(ValueError):
    """A stage cannot run on this work folder as asked (missing source, earlier stage not done, bad crop box)."""


class JobBusyError(JobError):
    """Another run holds the work folder."""


@dataclass
class StageOutcome:
    stage: str
    recomputed: bool
    fingerprint: str
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    work_dir: Path
    outcomes: dict[str, StageOutcome]

    @property
    def zip_path(self) -> Path:
        return package_path(self.work_dir, self.outcomes["package"].summary, "zip")

    @property
    def manifest(self) -> Path:
        return package_path(self.work_dir, self.outcomes["package"].summary, "manifest")

    @property
    def image_dir(self) -> Path:
        return package_path(self.work_dir, self.outcomes["package"].summary, "image_dir")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --- job.json ---------------------------------------------------------------------------------------------


def stored_config(config: LoraConfig) -> dict[str, Any]:
    """The config as written to job.json: never the API key (it is read from ``api_key_env`` when needed)."""
    return config.model_dump(mode="json", exclude={"caption": {"api_key"}})


def read_job(work_dir: Path) -> dict[str, Any]:
    path = Path(work_dir) / JOB_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def _blank_stage() -> dict[str, Any]:
    return {
        "status": "pending",
        "fingerprint": "",
        "done": 0,
        "total": 0,
        "message": "",
        "error": "",
        "started_at": "",
        "finished_at": "",
        "summary": {},
        "recomputed": False,
    }


def _update(work_dir: Path, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """Read-modify-write job.json under a process and thread lock, written atomically."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    with _STATE_LOCK, open(work_dir / ".job.lock", "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            job = read_job(work_dir)
            job.setdefault("stages", {})
            for stage in STAGES:
                job["stages"].setdefault(stage, _blank_stage())
            change(job)
            job["updated_at"] = _now()
            write_json(work_dir / JOB_FILE, job)
            return job
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


def init_job(work_dir: Path, source: Path, config: LoraConfig, job_id: str = "", source_name: str = "") -> dict[str, Any]:
    """Record the source and config of a work folder (stage states kept: re-running reuses what still fits)."""
    source = Path(source).resolve()
    if not source.exists():
        raise JobError(f"input {source} does not exist")
    if not (source.is_dir() or source.is_file()):
        raise JobError(f"input {source} is neither a ZIP file nor a folder")

    inside = source.is_relative_to(Path(work_dir).resolve())
    recorded = source.relative_to(Path(work_dir).resolve()).as_posix() if inside else str(source)

    def change(job: dict[str, Any]) -> None:
        job.update(source=recorded, source_name=source_name or source.name, config=stored_config(config))
        job.setdefault("job_id", job_id or Path(work_dir).resolve().name)
        job.setdefault("created_at", _now())
        job.setdefault("state", "new")

    return _update(work_dir, change)


def recorded_source(work_dir: Path) -> Path | None:
    """The input of a work folder; an upload kept inside the folder is recorded relative to it, so a
    copied or moved data root still finds it."""
    raw = read_job(work_dir).get("source")
    if not raw:
        return None
    path = Path(raw)
    return path if path.is_absolute() else Path(work_dir) / path


def job_config(work_dir: Path) -> LoraConfig:
    """The config a work folder was last run with (defaults when it has none)."""
    return LoraConfig.model_validate(read_job(work_dir).get("config") or {})


def set_state(work_dir: Path, state: str, error: str = "") -> dict[str, Any]:
    def change(job: dict[str, Any]) -> None:
        job["state"] = state
        job["error"] = error

    return _update(work_dir, change)


# --- fingerprints ---------------------------------------------------------------------------------------------


def source_identity(source: Path, work_dir: Path | None = None) -> dict[str, Any]:
    """Names, sizes and modification times of the input (a re-uploaded or edited input changes it);
    an input inside ``work_dir`` is named relative to it, so moving the data root does not change it."""
    source = Path(source)
    named = str(source.resolve())
    if work_dir is not None and source.resolve().is_relative_to(Path(work_dir).resolve()):
        named = source.resolve().relative_to(Path(work_dir).resolve()).as_posix()
    if source.is_file():
        info = source.stat()
        return {"kind": "file", "path": named, "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    entries = []
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            with contextlib.suppress(OSError):
                info = path.lstat()
                entries.append((path.relative_to(source).as_posix(), info.st_size, info.st_mtime_ns))
    return {"kind": "folder", "path": named, "entries": _hash(entries), "count": len(entries)}


def read_overrides(work_dir: Path) -> dict[str, Box]:
    path = Path(work_dir) / OVERRIDES_FILE
    if not path.exists():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {image_id: (int(b[0]), int(b[1]), int(b[2]), int(b[3])) for image_id, b in sorted(raw.items())}


def stage_fingerprint(work_dir: Path, stage: str, config: LoraConfig, upstream: str) -> str:
    """Own settings + the previous stage's fingerprint (ingest: the source; crops: also the manual boxes)."""
    if stage == "ingest":
        source = recorded_source(work_dir)
        if source is None:
            raise JobError(f"{work_dir}: no input recorded; start with build (CLI) or an upload")
        if not source.exists():
            raise JobError(f"the input {source} of {work_dir} no longer exists; build again with --input")
        own: Any = {"config": config.ingest.model_dump(mode="json"), "source": source_identity(source, work_dir)}
    elif stage == "dedup":
        own = config.dedup.model_dump(mode="json")
    elif stage == "crops":
        own = {"config": config.crop.model_dump(mode="json"), "overrides": {k: list(v) for k, v in read_overrides(work_dir).items()}}
    elif stage == "captions":
        own = settings_fingerprint(config.caption)
    elif stage == "package":
        own = config.package.model_dump(mode="json")
    else:
        raise JobError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    return _hash({"version": PIPELINE_VERSION, "stage": stage, "own": own, "upstream": upstream})


# --- running ---------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_lock(work_dir: Path) -> Iterator[None]:
    """Exclusive use of a work folder by one run (across threads and processes)."""
    work_dir = Path(work_dir)
    busy = partial(JobBusyError, f"{work_dir} is being processed by another run; wait for it to finish")
    with held_exclusively(work_dir / LOCK_FILE, busy):
        yield


class _Ticker:
    """Forwards stage progress to the caller and, throttled, to job.json."""

    def __init__(self, work_dir: Path, stage: str, progress: Progress | None) -> None:
        self.work_dir, self.stage, self.progress = work_dir, stage, progress
        self.last = 0.0

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.progress is not None:
            self.progress(self.stage, done, total, message)
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_S or done >= total:
            self.last = now

            def change(job: dict[str, Any]) -> None:
                job["stages"][self.stage].update(done=done, total=total, message=message[:300])

            _update(self.work_dir, change)


def run_stage(
    work_dir: Path, stage: str, config: LoraConfig | None = None, progress: Progress | None = None, force: bool = False
) -> StageOutcome:
    """Run one stage (or find it up to date). ``config`` None: the work folder's stored config."""
    with run_lock(work_dir):
        return _run_stage(Path(work_dir), stage, config, progress, force)


def _upstream_fingerprint(work_dir: Path, stage: str) -> str:
    index = STAGES.index(stage)
    if index == 0:
        return ""
    before = STAGES[index - 1]
    state = read_job(work_dir).get("stages", {}).get(before, {})
    if state.get("status") != "done" or not _outputs_exist(work_dir, before):
        raise JobError(f"stage {stage!r} needs {before!r} first (it is {state.get('status', 'pending')})")
    return str(state["fingerprint"])


def _outputs_exist(work_dir: Path, stage: str) -> bool:
    return all((work_dir / name).exists() for name in _OUTPUTS[stage])


def _run_stage(work_dir: Path, stage: str, config: LoraConfig | None, progress: Progress | None, force: bool) -> StageOutcome:
    if stage not in STAGES:
        raise JobError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    if config is None:
        config = job_config(work_dir)
    else:
        _update(work_dir, lambda job: job.update(config=stored_config(config)))
    fingerprint = stage_fingerprint(work_dir, stage, config, _upstream_fingerprint(work_dir, stage))
    state = read_job(work_dir)["stages"][stage]
    if not force and state.get("status") == "done" and state.get("fingerprint") == fingerprint and _outputs_exist(work_dir, stage):
        if progress is not None:
            progress(stage, state.get("total", 0), state.get("total", 0), "up to date")
        _update(work_dir, lambda job: job["stages"][stage].update(recomputed=False))
        return StageOutcome(stage, False, fingerprint, 0.0, dict(state.get("summary", {})))

    def start(job: dict[str, Any]) -> None:
        job["stages"][stage].update(
            status="running", done=0, total=0, message="started", error="", started_at=_now(), finished_at="", recomputed=True
        )
        for later in STAGES[STAGES.index(stage) + 1 :]:
            if job["stages"][later]["status"] == "done":
                job["stages"][later]["status"] = "pending"  # its input is about to change

    _update(work_dir, start)
    if progress is not None:
        progress(stage, 0, 0, "started")
    began = time.monotonic()
    try:
        summary = _STAGE_RUNNERS[stage](work_dir, config, _Ticker(work_dir, stage, progress))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]

        def failed(job: dict[str, Any]) -> None:
            job["stages"][stage].update(
                status="failed", error=error, finished_at=_now(), fingerprint="", trace=traceback.format_exc()[-MAX_ERROR:]
            )

        _update(work_dir, failed)
        raise
    seconds = round(time.monotonic() - began, 3)

    def finished(job: dict[str, Any]) -> None:
        total = job["stages"][stage].get("total") or 0
        job["stages"][stage].update(
            status="done", fingerprint=fingerprint, finished_at=_now(), seconds=seconds, summary=summary, message="done", done=total
        )

    _update(work_dir, finished)
    if progress is not None:
        progress(stage, 1, 1, "done")
    return StageOutcome(stage, True, fingerprint, seconds, summary)


def run_stages(
    work_dir: Path, stages: Sequence[str] = STAGES, config: LoraConfig | None = None, progress: Progress | None = None
) -> dict[str, StageOutcome]:
    """Run ``stages`` in order under one lock, keeping the job's overall state in job.json."""
    work_dir = Path(work_dir)
    with run_lock(work_dir):
        set_state(work_dir, "running")
        outcomes: dict[str, StageOutcome] = {}
        try:
            for stage in stages:
                outcomes[stage] = _run_stage(work_dir, stage, config, progress, force=False)
        except Exception as exc:
            set_state(work_dir, "failed", f"{type(exc).__name__}: {exc}"[:MAX_ERROR])
            raise
        set_state(work_dir, "done" if all(_done(work_dir, s) for s in STAGES) else "partial")
        return outcomes


def _done(work_dir: Path, stage: str) -> bool:
    return read_job(work_dir).get("stages", {}).get(stage, {}).get("status") == "done"


def build(source: Path, work_dir: Path, config: LoraConfig, progress: Progress | None = None) -> BuildResult:
    """Every stage from a ZIP or folder to the packaged dataset, skipping what is already up to date."""
    work_dir = Path(work_dir).resolve()
    source = Path(source).resolve()
    if source == work_dir or (source.is_dir() and work_dir.is_relative_to(source)):
        raise JobError(f"the output folder {work_dir} must not be inside the input folder {source}")
    init_job(work_dir, source, config)
    return BuildResult(work_dir, run_stages(work_dir, STAGES, config, progress))


# --- manual crop boxes -----------------------------------------------------------------------------------------------


def set_crop_box(work_dir: Path, image_id: str, box: Sequence[int]) -> dict[str, Box]:
    """Store a manual square crop box (stored-image pixels, inside the image) for one image kept by dedup.

    Takes effect at the next crops run: ``run_stages(work_dir, ("crops", "captions", "package"))``.
    """
    work_dir = Path(work_dir)
    checked = _check_box(work_dir, image_id, box)
    overrides = read_overrides(work_dir)
    overrides[image_id] = checked
    write_json(work_dir / OVERRIDES_FILE, {k: list(v) for k, v in sorted(overrides.items())})
    return overrides


def clear_crop_box(work_dir: Path, image_id: str) -> dict[str, Box]:
    overrides = read_overrides(work_dir)
    if overrides.pop(image_id, None) is not None:
        write_json(Path(work_dir) / OVERRIDES_FILE, {k: list(v) for k, v in sorted(overrides.items())})
    return overrides


def _check_box(work_dir: Path, image_id: str, box: Sequence[int]) -> Box:
    if len(box) != 4 or not all(isinstance(v, int) and not isinstance(v, bool) for v in box):
        raise JobError(f"crop box {list(box)!r}: give four whole numbers [left, top, right, bottom]")
    left, top, right, bottom = box
    if not (_table_exists(work_dir, "dedup")):
        raise JobError(f"{work_dir}: no dedup results yet; crop boxes can be set once dedup has run")
    ingest = {r.image_id: r for r in INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))}
    record = ingest.get(image_id)
    if record is None or record.status != "kept":
        raise JobError(f"no ingested image {image_id!r} in {work_dir}")
    decisions = {r.image_id: r for r in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE))}
    if image_id not in decisions or not decisions[image_id].kept:
        raise JobError(f"image {image_id!r} was dropped by dedup; only kept images are cropped")
    if right <= left or bottom <= top:
        raise JobError(f"crop box {list(box)}: right must exceed left and bottom must exceed top")
    if right - left != bottom - top:
        raise JobError(f"crop box {list(box)} is {right - left}x{bottom - top}; the crop must be square")
    if left < 0 or top < 0 or right > record.width or bottom > record.height:
        raise JobError(f"crop box {list(box)} leaves the {record.width}x{record.height} image")
    return (left, top, right, bottom)


def _table_exists(work_dir: Path, stage: str) -> bool:
    return _outputs_exist(work_dir, stage)


# --- the stages ---------------------------------------------------------------------------------------------------------


def _ingest(work_dir: Path, config: LoraConfig, tick: _Ticker) -> dict[str, Any]:
    from aesthetic_platform.lora.ingest import ingest

    source = recorded_source(work_dir)
    if source is None:
        raise JobError(f"{work_dir}: no input recorded; start with build (CLI) or an upload")
    result = ingest(source, work_dir, config.ingest, tick)
    records = result.records
    reasons = Counter(f"{r.status}: {r.reason}" for r in records if r.status != "kept")
    return {
        "files": len(records),
        "kept": result.kept,
        "skipped": result.skipped,
        "refused": sum(1 for r in records if r.status == "refused"),
        "reasons": dict(reasons.most_common(20)),
    }


def _dedup(work_dir: Path, config: LoraConfig, tick: _Ticker) -> dict[str, Any]:
    from aesthetic_platform.lora.dedup import dedup

    dedup(work_dir, config.dedup, tick)
    rows = DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE))
    dropped = Counter(r.stage for r in rows if not r.kept)
    return {
        "images": len(rows),
        "kept": sum(r.kept for r in rows),
        "dropped": sum(dropped.values()),
        "dropped_by_stage": dict(sorted(dropped.items())),
        "clusters": len({r.cluster for r in rows}),
        "with_face": sum(1 for r in rows if r.face_box),
    }


def _crops(work_dir: Path, config: LoraConfig, tick: _Ticker) -> dict[str, Any]:
    from aesthetic_platform.lora.crop import focus_and_crop

    kept = {r.image_id for r in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE)) if r.kept}
    overrides = read_overrides(work_dir)
    # a box stays stored for an image a changed dedup setting dropped; it applies again if the image comes back
    focus_and_crop(work_dir, config.crop, {k: v for k, v in overrides.items() if k in kept}, tick)
    rows = CROP_RECORDS.rows(CROP_RECORDS.read(work_dir / CROPS_TABLE))
    return {
        "images": len(rows),
        "unused_boxes": sorted(set(overrides) - kept),
        "cropped": sum(r.status == "cropped" for r in rows),
        "refused": sum(r.status == "refused" for r in rows),
        "manual": sum(r.crop_source == "manual" for r in rows),
        "focus": dict(sorted(Counter(r.focus_kind for r in rows).items())),
        "refusals": dict(Counter(r.reason for r in rows if r.status == "refused").most_common(10)),
    }


def _captions(work_dir: Path, config: LoraConfig, tick: _Ticker) -> dict[str, Any]:
    return caption_crops(work_dir, config.caption, tick).as_dict()


def _package(work_dir: Path, config: LoraConfig, tick: _Ticker) -> dict[str, Any]:
    result = package(work_dir, config.package, tick)
    summary = result.as_dict()
    for key in PACKAGE_PATHS:  # relative, so the summary in job.json stays right when the data root moves
        summary[key] = Path(summary[key]).relative_to(Path(work_dir)).as_posix()
    summary["zip_name"] = zip_name(config.package)
    return summary


def package_path(work_dir: Path, summary: dict[str, Any], key: str) -> Path:
    """A path of the package stage's summary (``zip``, ``manifest``, ``image_dir``, ``dataset_dir``) in ``work_dir``."""
    return Path(work_dir) / summary[key]


_STAGE_RUNNERS: dict[str, Callable[[Path, LoraConfig, _Ticker], dict[str, Any]]] = {
    "ingest": _ingest,
    "dedup": _dedup,
    "crops": _crops,
    "captions": _captions,
    "package": _package,
}
