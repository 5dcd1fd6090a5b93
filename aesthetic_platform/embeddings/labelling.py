"""The labelling tab's HTTP API (mounted into the workbench app under ``/labels``).

One item at a time: the review queue first (disputed items this annotator has not labelled),
then items this annotator has not labelled, fewest labels first. A label is one appended row;
undo appends the annotator's previous label of that item again (or a retraction), so the
table stays append-only. Images are served only for items of the store whose file still has
the item's sha256.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.embeddings.config import EmbeddingStoreConfig
from aesthetic_platform.embeddings.labels import RETRACTED, LabelRecord, add_labels, consensus_of, effective_labels, review_order
from aesthetic_platform.embeddings.store import Store
from aesthetic_platform.paths import DataRoot

IMAGE_SUFFIXES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp"}
NAME = r"^[^\s].{0,99}$"
STATIC = Path(__file__).resolve().parent / "static"


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item: str = Field(pattern=r"^[0-9a-f]{64}$")
    task: str = Field(pattern=NAME)
    label: str = Field(min_length=1, max_length=200)
    annotator: str = Field(pattern=NAME)


class UndoIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str = Field(pattern=NAME)
    annotator: str = Field(pattern=NAME)


def labelling_router(root: DataRoot, config: EmbeddingStoreConfig | None = None) -> APIRouter:
    router = APIRouter(prefix="/labels", tags=["labels"])
    lock = threading.Lock()
    undo_stacks: dict[tuple[str, str], list[tuple[str, str | None]]] = defaultdict(list)  # (task, annotator) -> [(item, previous)]
    holder: dict[str, Store] = {}

    def store() -> Store:
        with lock:
            if "store" not in holder:
                holder["store"] = Store.open(config, root)
            return holder["store"]

    def item_out(st: Store, sha: str, votes: dict[str, int] | None) -> dict[str, Any]:
        item = st.get_items([sha])[sha]
        return {
            "sha256": sha, "kind": item.kind, "text": item.text, "meta": item.meta,
            "url": f"/labels/image/{sha}" if item.kind == "image" else None, "votes": votes,
        }

    @router.get("/next")
    def next_item(
        task: str = Query(pattern=NAME), annotator: str = Query(pattern=NAME), skip: str = Query(default="", max_length=65 * 1000)
    ) -> dict[str, Any]:
        """The next item for ``annotator``: review queue first, then unlabelled by them; ``skip``: comma-separated sha256s."""
        st = store()
        skipped = {s for s in skip.split(",") if s}
        labels = effective_labels(st, task)
        by_item: dict[str, dict[str, str]] = defaultdict(dict)
        for row in labels:
            by_item[row.item][row.annotator] = row.label
        mine = {item for item, who in by_item.items() if annotator in who}
        disputed = review_order(consensus_of(item, task, list(who.values())) for item, who in by_item.items())
        queue = [c for c in disputed if c.item not in mine and c.item not in skipped]
        counts = {"review": len(queue), "labelled_by_you": len(mine)}
        if queue:
            return {"item": item_out(st, queue[0].item, queue[0].votes), "review": True, "counts": counts}
        candidates = sorted((len(by_item.get(sha, {})), str(created), sha) for sha, created in _all_items(st)
                            if sha not in mine and sha not in skipped)
        counts["unlabelled_by_you"] = len(candidates)
        if not candidates:
            return {"item": None, "review": False, "counts": counts}
        sha = candidates[0][2]
        votes = dict(sorted(_votes(by_item.get(sha, {})).items())) or None
        return {"item": item_out(st, sha, votes), "review": False, "counts": counts}

    @router.post("/submit")
    def submit(body: LabelIn) -> dict[str, Any]:
        st = store()
        if not st.get_items([body.item]):
            raise HTTPException(404, f"no item {body.item} in the store")
        if body.label == RETRACTED:
            raise HTTPException(422, f"{RETRACTED!r} is reserved for undo")
        with lock:
            previous = next((r.label for r in effective_labels(st, body.task, [body.item]) if r.annotator == body.annotator), None)
            add_labels(st, [LabelRecord(item=body.item, task=body.task, annotator=body.annotator, label=body.label)])
            undo_stacks[(body.task, body.annotator)].append((body.item, previous))
        return {"stored": True, "item": body.item, "label": body.label, "previous": previous}

    @router.post("/undo")
    def undo(body: UndoIn) -> dict[str, Any]:
        """Take back this annotator's last label of this session: their previous label of that item comes back (or none)."""
        st = store()
        with lock:
            stack = undo_stacks[(body.task, body.annotator)]
            if not stack:
                raise HTTPException(409, f"nothing to undo for {body.annotator} on {body.task}")
            item, previous = stack.pop()
            add_labels(st, [LabelRecord(item=item, task=body.task, annotator=body.annotator, label=previous or RETRACTED)])
        by_item = {r.annotator: r.label for r in effective_labels(st, body.task, [item])}
        return {"item": item_out(st, item, _votes(by_item) or None), "restored": previous}

    @router.get("/image/{sha}", include_in_schema=False)
    def image(sha: str) -> FileResponse:
        found = store().get_items([sha]) if len(sha) == 64 else {}
        item = found.get(sha)
        if item is None or item.kind != "image" or not item.path:
            raise HTTPException(404, "no such image item")
        path = Path(item.path)
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file() or sha256_file(path) != sha:
            raise HTTPException(404, "the item's file is gone or has changed")
        return FileResponse(path, media_type=IMAGE_SUFFIXES[path.suffix.lower()])

    @router.get("/static/labels.js", include_in_schema=False)
    def script() -> FileResponse:
        return FileResponse(STATIC / "labels.js", media_type="text/javascript")

    return router


def _votes(labels: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for label in labels.values():
        out[label] += 1
    return dict(out)


def _all_items(st: Store) -> list[tuple[str, Any]]:
    import sqlalchemy as sa

    from aesthetic_platform.embeddings import db

    with st.engine.connect() as conn:
        return [(sha, created) for sha, created in conn.execute(sa.select(db.items.c.sha256, db.items.c.created_at))]
