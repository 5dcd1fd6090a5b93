"""Multi-annotator labels: append-only rows, effective labels, consensus, review queue, agreement.

- **Effective label**: the latest label per (item, task, annotator); a change of mind is a new
  row, never an update (ties in ``created_at`` go to the row written last); an undo appends the
  previous label again, or a ``RETRACTED`` row when there was none.
- **Consensus** per (item, task): the label of a strict majority of the annotators' effective
  labels; ``None`` on a tie. ``agreement`` = share of annotators behind the most common label.
- **Review queue**: items whose annotators do not all agree (ties first, then lowest agreement,
  then most annotators).
- **Agreement statistics**: Krippendorff's alpha (nominal, ``krippendorff`` package) over all
  annotators and items, and per annotator the share of their labels that match the majority of
  the *other* annotators on items where those others have one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aesthetic_platform.atomic import write_text
from aesthetic_platform.embeddings import db
from aesthetic_platform.embeddings.store import Store, as_of

LABEL_FIELDS = ("item", "task", "annotator", "label", "created_at")
#: A row with this label withdraws the annotator's label of that item (the labelling tab's undo); rows are never deleted.
RETRACTED = "(retracted)"
_NAME = r"^[^\s].{0,99}$"


class LabelRecord(BaseModel):
    """One label as imported or exported (a row of ``labels``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the item's content (an item in the store)")
    task: str = Field(pattern=_NAME, description="label task, e.g. usable")
    annotator: str = Field(pattern=_NAME, description="who labelled")
    label: str = Field(min_length=1, max_length=200)
    created_at: dt.datetime | None = Field(default=None, description="ISO 8601; empty means the time of import")

    @field_validator("item", "task", "annotator", "label", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else as_of(value).astimezone(dt.UTC)


@dataclass(frozen=True)
class EffectiveLabel:
    item: str
    task: str
    annotator: str
    label: str
    created_at: dt.datetime


@dataclass(frozen=True)
class Consensus:
    item: str
    task: str
    label: str | None  # None: no strict majority
    votes: dict[str, int]
    annotators: int
    agreement: float

    @property
    def disputed(self) -> bool:
        return len(self.votes) > 1

    @property
    def status(self) -> str:
        if self.annotators == 1:
            return "single"
        if not self.disputed:
            return "unanimous"
        return "majority" if self.label is not None else "tie"


@dataclass(frozen=True)
class AgreementStats:
    task: str
    alpha: float | None  # None when undefined (fewer than 2 annotators on any item, or one label only)
    items: int
    annotators: int
    disputed: int
    per_annotator: dict[str, dict[str, float]]  # annotator -> {"labels", "compared", "agreement"}


def add_labels(store: Store, records: Iterable[LabelRecord]) -> int:
    """Append labels (items must be in the store); one INSERT per chunk, all or nothing."""
    rows = list(records)
    if not rows:
        return 0
    known = store.get_items({r.item for r in rows})
    unknown = sorted({r.item for r in rows} - set(known))
    if unknown:
        raise ValueError(f"{len(unknown)} item(s) are not in the store, e.g. {unknown[0]}; embed or register them first")
    now = db.utcnow()
    values = [
        {"item_sha256": r.item, "task": r.task, "annotator": r.annotator, "label": r.label, "created_at": r.created_at or now}
        for r in rows
    ]
    chunk = db.SQLITE_MAX_PARAMS // 5 if store.backend == "sqlite" else db.POSTGRES_MAX_PARAMS // 5
    with store.engine.begin() as conn:
        for start in range(0, len(values), chunk):
            conn.execute(sa.insert(db.labels).values(values[start : start + chunk]))
    return len(values)


def label_history(store: Store, task: str | None = None) -> list[EffectiveLabel]:
    """Every label row (the append-only history), oldest first."""
    t = db.labels
    stmt = sa.select(t.c.item_sha256, t.c.task, t.c.annotator, t.c.label, t.c.created_at).order_by(t.c.created_at, t.c.id)
    if task is not None:
        stmt = stmt.where(t.c.task == task)
    with store.engine.connect() as conn:
        return [EffectiveLabel(i, k, a, lab, as_of(c)) for i, k, a, lab, c in conn.execute(stmt)]


def effective_labels(store: Store, task: str | None = None, items: Sequence[str] | None = None) -> list[EffectiveLabel]:
    """The latest label per (item, task, annotator), in one statement (a window function); a latest ``RETRACTED`` means none."""
    t = db.labels
    rank = sa.func.row_number().over(
        partition_by=(t.c.item_sha256, t.c.task, t.c.annotator), order_by=(t.c.created_at.desc(), t.c.id.desc())
    )
    inner = sa.select(t.c.item_sha256, t.c.task, t.c.annotator, t.c.label, t.c.created_at, rank.label("rank"))
    if task is not None:
        inner = inner.where(t.c.task == task)
    sub = inner.subquery()
    stmt = (
        sa.select(sub.c.item_sha256, sub.c.task, sub.c.annotator, sub.c.label, sub.c.created_at)
        .where(sub.c.rank == 1)
        .order_by(sub.c.task, sub.c.item_sha256, sub.c.annotator)
    )
    with store.engine.connect() as conn:
        rows = [EffectiveLabel(i, k, a, lab, as_of(c)) for i, k, a, lab, c in conn.execute(stmt) if lab != RETRACTED]
    if items is not None:
        wanted = set(items)
        rows = [r for r in rows if r.item in wanted]
    return rows


def consensus_of(item: str, task: str, labels: list[str]) -> Consensus:
    votes = Counter(labels)
    ranked = votes.most_common()
    top, count = ranked[0]
    majority = count * 2 > len(labels)
    return Consensus(item, task, top if majority else None, dict(sorted(votes.items())), len(labels), count / len(labels))


def consensus(store: Store, task: str, items: Sequence[str] | None = None) -> list[Consensus]:
    """Consensus per labelled item of ``task``."""
    by_item: dict[str, list[str]] = defaultdict(list)
    for row in effective_labels(store, task, items):
        by_item[row.item].append(row.label)
    return [consensus_of(item, task, labels) for item, labels in sorted(by_item.items())]


def review_order(verdicts: Iterable[Consensus]) -> list[Consensus]:
    """Disputed items, most in need of a look first: ties, then low agreement, then many annotators."""
    disputed = [c for c in verdicts if c.disputed]
    return sorted(disputed, key=lambda c: (c.label is not None, c.agreement, -c.annotators, c.item))


def review_queue(store: Store, task: str) -> list[Consensus]:
    return review_order(consensus(store, task))


def tasks(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(db.labels.c.task).distinct().order_by(db.labels.c.task)).scalars())


def agreement(store: Store, task: str) -> AgreementStats:
    import krippendorff

    rows = effective_labels(store, task)
    annotators = sorted({r.annotator for r in rows})
    item_ids = sorted({r.item for r in rows})
    values = sorted({r.label for r in rows})
    by_item: dict[str, dict[str, str]] = defaultdict(dict)
    for r in rows:
        by_item[r.item][r.annotator] = r.label
    alpha: float | None = None
    if len(annotators) >= 2 and len(values) >= 2 and any(len(v) >= 2 for v in by_item.values()):
        code = {v: i for i, v in enumerate(values)}
        matrix = np.full((len(annotators), len(item_ids)), np.nan)
        for j, item in enumerate(item_ids):
            for i, who in enumerate(annotators):
                if who in by_item[item]:
                    matrix[i, j] = code[by_item[item][who]]
        alpha = float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="nominal", value_domain=list(range(len(values)))))
    per: dict[str, dict[str, float]] = {}
    for who in annotators:
        mine = {item: labels[who] for item, labels in by_item.items() if who in labels}
        compared = agreed = 0
        for item, label in mine.items():
            others = [lab for other, lab in by_item[item].items() if other != who]
            if not others:
                continue
            verdict = consensus_of(item, task, others)
            if verdict.label is None:
                continue
            compared += 1
            agreed += verdict.label == label
        per[who] = {"labels": len(mine), "compared": compared, "agreement": (agreed / compared) if compared else float("nan")}
    disputed = sum(1 for labels in by_item.values() if len(set(labels.values())) > 1)
    return AgreementStats(task, alpha, len(item_ids), len(annotators), disputed, per)


# ---- files ------------------------------------------------------------------------------------


class LabelFileError(ValueError):
    """A label file cannot be imported; the message names the file, the line or record and the field."""

    def __init__(self, source: str, location: str, field: str | None, problem: str) -> None:
        self.source, self.location, self.field, self.problem = source, location, field, problem
        where = f"{location}, field '{field}'" if field else location
        super().__init__(f"{source}: {where}: {problem}")


def _record(values: dict[str, Any], source: str, location: str) -> LabelRecord:
    try:
        return LabelRecord.model_validate(values)
    except ValidationError as exc:
        err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
        field = ".".join(str(p) for p in err["loc"]) or None
        problem = err["msg"]
        if err["type"] == "extra_forbidden":
            problem = f"unknown field; accepted fields are {', '.join(LABEL_FIELDS)}"
        elif field == "item" and err["type"] == "string_pattern_mismatch":
            problem = "not a sha256 hex digest (64 lowercase hex characters)"
        raise LabelFileError(source, location, field, problem) from None


def parse_label_csv(text: str, source: str = "<csv>") -> list[tuple[str, LabelRecord]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [c.strip() if c else c for c in (reader.fieldnames or [])]
    if not header:
        raise LabelFileError(source, "line 1", None, f"the file is empty; expected a header row with {', '.join(LABEL_FIELDS[:4])}")
    for column in header:
        if column not in LABEL_FIELDS:
            raise LabelFileError(source, "line 1", str(column), f"unknown column; accepted columns are {', '.join(LABEL_FIELDS)}")
    for required in LABEL_FIELDS[:4]:
        if required not in header:
            raise LabelFileError(source, "line 1", required, "missing required column")
    out = []
    for row in reader:
        location = f"line {reader.line_num}"
        if None in row:
            raise LabelFileError(source, location, None, f"more values than the {len(header)} columns")
        if all(v in (None, "") for v in row.values()):
            continue
        values = {k.strip(): v for k, v in row.items() if not (k.strip() == "created_at" and v in (None, ""))}
        out.append((location, _record(values, source, location)))
    return out


def parse_label_json(text: str, source: str = "<json>") -> list[tuple[str, LabelRecord]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabelFileError(source, f"line {exc.lineno}", None, f"invalid JSON: {exc.msg}") from None
    if isinstance(data, dict):
        if set(data) != {"labels"}:
            raise LabelFileError(source, "top level", None, 'expected a list of labels or {"labels": [...]}')
        data = data["labels"]
    if not isinstance(data, list):
        raise LabelFileError(source, "top level", None, 'expected a list of labels or {"labels": [...]}')
    out = []
    for index, value in enumerate(data, start=1):
        location = f"record {index}"
        if not isinstance(value, dict):
            raise LabelFileError(source, location, None, "expected an object with item, task, annotator, label")
        out.append((location, _record(value, source, location)))
    return out


def read_label_file(path: str | Path) -> list[tuple[str, LabelRecord]]:
    """Parse and validate a CSV or JSON label file: ``[(location, record)]``; raises ``LabelFileError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise LabelFileError(str(path), "file", None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise LabelFileError(str(path), f"byte {exc.start}", None, "not UTF-8 text") from None
    if path.suffix.lower() == ".json":
        return parse_label_json(text, str(path))
    if path.suffix.lower() == ".csv":
        return parse_label_csv(text, str(path))
    raise LabelFileError(str(path), "file", None, "unsupported file type; use .csv or .json")


def import_label_file(store: Store, path: str | Path) -> int:
    """Validate the whole file (fields, and that every item is in the store), then append all labels at once."""
    parsed = read_label_file(path)
    known = store.get_items({record.item for _, record in parsed})
    for location, record in parsed:
        if record.item not in known:
            raise LabelFileError(str(path), location, "item", f"no item {record.item} in the store; embed or register it first")
    return add_labels(store, [record for _, record in parsed])


def export_labels(store: Store, path: str | Path, task: str | None = None, effective: bool = False) -> int:
    """Write labels to ``.csv`` or ``.json`` (the import format): the full history, or effective labels only."""
    path = Path(path)
    rows = effective_labels(store, task) if effective else label_history(store, task)
    records = [
        {"item": r.item, "task": r.task, "annotator": r.annotator, "label": r.label, "created_at": r.created_at.isoformat()} for r in rows
    ]
    if path.suffix.lower() == ".json":
        write_text(path, json.dumps({"labels": records}, ensure_ascii=False, indent=1) + "\n")
    elif path.suffix.lower() == ".csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(LABEL_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
        write_text(path, buffer.getvalue())
    else:
        raise ValueError(f"{path}: unsupported file type; use .csv or .json")
    return len(records)
