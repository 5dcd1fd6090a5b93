"""The selections log (seed 001 §3.3): one JSON line per human judgement, append-only.

A submission keeps golden *and* bad seeds with everything needed to regenerate and
analyse them (prompt, generator and version, steps, guidance, scheduler, size,
assist scores, annotator, timestamps). Nothing is ever rewritten: an undo is a new
line that names the submission it withdraws, and every reader goes through
:func:`active_selections`, which honours those lines.
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import append_jsonl, read_jsonl
from aesthetic_platform.paths import DataRoot

SELECTIONS_FILE = "selections.jsonl"


def workbench_dir(root: DataRoot) -> Path:
    return root.workbench


def selections_path(root: DataRoot) -> Path:
    return workbench_dir(root) / SELECTIONS_FILE


def images_dir(root: DataRoot) -> Path:
    """The only folder the workbench serves images from."""
    return workbench_dir(root) / "images"


def new_id() -> str:
    return uuid.uuid4().hex


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgedImage(_Record):
    """One image of a judged batch: enough to find it and to regenerate it."""

    seed: int = Field(ge=0, lt=2**32)
    path: str = Field(description="absolute path of the PNG under the workbench image folder")
    width: int
    height: int
    score: float | None = Field(default=None, description="assist score shown (or computable) at judging time; null when unavailable")


class Selection(_Record):
    """A person's judgement of one batch: golden seeds versus the bad rest (ties and all-bad allowed)."""

    kind: Literal["selection"] = "selection"
    submission_id: str
    batch_id: str
    prompt_id: str
    prompt: str
    prompt_hash: str
    golden_seeds: list[int]
    bad_seeds: list[int]
    images: list[JudgedImage]
    generator: str = Field(description="generator kind and model, e.g. diffusers/black-forest-labs/FLUX.1-schnell")
    model_version: str
    steps: int | None
    guidance: float | None
    scheduler: str | None
    ratio: str
    width: int
    height: int
    params: dict[str, Any] = Field(description="every generation parameter, including latent geometry for diffusers")
    score_model: str | None = Field(description="the assist scorer that produced `images[].score`, null when none")
    annotator: str
    generated_at: dt.datetime
    submitted_at: dt.datetime


class Undo(_Record):
    """Withdraws an earlier submission without touching its line."""

    kind: Literal["undo"] = "undo"
    submission_id: str
    undoes: str
    annotator: str
    submitted_at: dt.datetime


def append_record(root: DataRoot, record: Selection | Undo) -> None:
    append_jsonl(selections_path(root), record.model_dump(mode="json"))


def read_log(root: DataRoot) -> list[Selection | Undo]:
    """Every line of the log, validated; a line that is neither kind raises with its number."""
    records: list[Selection | Undo] = []
    for number, raw in enumerate(read_jsonl(selections_path(root)), start=1):
        kind = raw.get("kind")
        if kind == "selection":
            records.append(Selection.model_validate(raw))
        elif kind == "undo":
            records.append(Undo.model_validate(raw))
        else:
            raise ValueError(f"{selections_path(root)}: record {number} has unknown kind {kind!r}")
    return records


def active_selections(records: list[Selection | Undo]) -> list[Selection]:
    """Submissions that no undo line withdraws, in log order."""
    undone = {r.undoes for r in records if isinstance(r, Undo)}
    return [r for r in records if isinstance(r, Selection) and r.submission_id not in undone]


def last_active_by(records: list[Selection | Undo], annotator: str) -> Selection | None:
    """The annotator's most recent submission that is still in force (what U undoes)."""
    mine = [r for r in active_selections(records) if r.annotator == annotator]
    return mine[-1] if mine else None
