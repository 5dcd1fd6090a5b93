"""Label snapshots and the review queue as Parquet tables (``label_snapshot``, ``label_review_queue``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.embeddings import db
from aesthetic_platform.embeddings.labels import AgreementStats, Consensus, agreement, consensus_of, effective_labels, review_order
from aesthetic_platform.embeddings.store import Store, as_of
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import LABEL_REVIEW_QUEUE, LABEL_SNAPSHOT, LabelConsensus, ReviewQueueItem


@dataclass
class LabelSnapshot:
    """Every labelled (item, task) with its consensus, the review queue, and agreement per task."""

    rows: list[LabelConsensus]
    queue: list[ReviewQueueItem]
    stats: dict[str, AgreementStats]


def take_snapshot(store: Store) -> LabelSnapshot:
    at = as_of(db.utcnow())
    by_key: dict[tuple[str, str], dict[str, str]] = {}
    for r in effective_labels(store):
        by_key.setdefault((r.task, r.item), {})[r.annotator] = r.label
    found = store.get_items({item for _, item in by_key})
    verdicts = {key: consensus_of(key[1], key[0], list(labels.values())) for key, labels in sorted(by_key.items())}

    def row(task: str, item_sha: str) -> dict:
        c, item = verdicts[(task, item_sha)], found.get(item_sha)
        return {
            "item": item_sha, "task": task, "kind": item.kind if item else "unknown", "path": item.path if item else None,
            "text": item.text if item else None, "annotators": c.annotators,
            "effective_json": json.dumps(by_key[(task, item_sha)], sort_keys=True),
            "votes_json": json.dumps(c.votes, sort_keys=True), "consensus": c.label, "agreement": c.agreement, "status": c.status,
            "snapshot_at": at,
        }

    rows = [LabelConsensus.model_validate(row(task, item)) for task, item in verdicts]
    stats = {task: agreement(store, task) for task in sorted({task for task, _ in verdicts})}
    return LabelSnapshot(rows, review_queue_of(rows), stats)


def review_queue_of(rows: list[LabelConsensus]) -> list[ReviewQueueItem]:
    """The disputed rows of a snapshot, ranked per task like ``labels.review_order`` (ties, low agreement, many annotators)."""
    queue: list[ReviewQueueItem] = []
    for task in sorted({r.task for r in rows}):
        by_item = {r.item: r for r in rows if r.task == task}
        verdicts = {i: Consensus(i, task, r.consensus, json.loads(r.votes_json), r.annotators, r.agreement) for i, r in by_item.items()}
        for rank, c in enumerate(review_order(verdicts.values()), start=1):
            queue.append(ReviewQueueItem.model_validate({**by_item[c.item].model_dump(), "rank": rank}))
    return queue


def write_snapshot(root: DataRoot, snapshot: LabelSnapshot) -> Path:
    return LABEL_SNAPSHOT.write(snapshot.rows, root.table(LABEL_SNAPSHOT.name))


def read_snapshot(root: DataRoot) -> list[LabelConsensus]:
    """The snapshot's rows, image paths read against the root where it is now."""
    return LABEL_SNAPSHOT.rows(LABEL_SNAPSHOT.read(root.table(LABEL_SNAPSHOT.name)), root)


def write_review_queue(root: DataRoot, queue: list[ReviewQueueItem]) -> Path:
    return LABEL_REVIEW_QUEUE.write(queue, root.table(LABEL_REVIEW_QUEUE.name))
