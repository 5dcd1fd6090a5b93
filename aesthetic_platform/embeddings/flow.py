"""Seed 003's dataset flow, written for a database 100 ms away.

pull items in batches -> hash -> dedupe -> ONE lookup of what exists -> embed only what is
missing -> ONE batched write -> join the labels. A failed embedder call stores nothing for its
items; they are reported, and a re-run embeds only them (everything else is found in the store).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from aesthetic_platform.embeddings.embedders import Embedder, EmbeddingError
from aesthetic_platform.embeddings.store import Item, Store


@dataclass
class EmbedReport:
    """What one embedding pass did."""

    model_id: str
    requested: int = 0  # items passed in, duplicates included
    unique: int = 0
    reused: int = 0  # already in the store
    embedded: int = 0  # new vectors written
    failed: dict[str, str] = field(default_factory=dict)  # sha256 -> why
    calls: int = 0  # embedder calls made
    truncated: dict[str, int] = field(default_factory=dict)  # sha256 -> tokens, of texts embedded now past the model's limit
    max_tokens: int | None = None  # the limit they passed

    def as_metadata(self) -> dict[str, object]:
        return {
            "model_id": self.model_id, "requested": self.requested, "unique": self.unique, "reused": self.reused,
            "embedded": self.embedded, "failed": len(self.failed), "embedder_calls": self.calls,
            "truncated": len(self.truncated),
        }

    def truncation_warning(self) -> str | None:
        """One line for the log when texts were cut, naming the longest; ``None`` when none were."""
        if not self.truncated:
            return None
        longest = max(self.truncated.values())
        return (f"{len(self.truncated)} text(s) are longer than {self.model_id}'s {self.max_tokens} tokens (longest: {longest}); "
                f"their vectors cover only the first {self.max_tokens} tokens (sha256: {', '.join(list(self.truncated)[:5])})")

    def add(self, other: EmbedReport) -> None:
        """Fold another pass of the same model into this one."""
        self.requested += other.requested
        self.unique += other.unique
        self.reused += other.reused
        self.embedded += other.embedded
        self.failed.update(other.failed)
        self.calls += other.calls
        self.truncated.update(other.truncated)
        self.max_tokens = other.max_tokens if other.max_tokens is not None else self.max_tokens


#: consecutive failed embedder calls after which the rest of a pass is reported failed without calling (an endpoint that is down)
GIVE_UP_AFTER = 8


def _embed_batch(embedder: Embedder, batch: Sequence[Item], report: EmbedReport, out: dict[str, np.ndarray], streak: list[int]) -> None:
    """Embed one batch; when it fails, halve it to isolate the items that fail on their own."""
    if streak[0] >= GIVE_UP_AFTER:
        for item in batch:
            report.failed[item.sha256] = f"not tried: {streak[0]} embedder calls in a row failed (the endpoint looks down)"
        return
    report.calls += 1
    try:
        vectors = embedder.embed(batch)
    except EmbeddingError as exc:
        streak[0] += 1
        if len(batch) > 1 and not exc.timed_out:  # a timeout would only time out again, smaller
            middle = len(batch) // 2
            _embed_batch(embedder, batch[:middle], report, out, streak)
            _embed_batch(embedder, batch[middle:], report, out, streak)
        else:
            for item in batch:
                report.failed.setdefault(item.sha256, str(exc))
        return
    streak[0] = 0
    for item, vector in zip(batch, vectors, strict=True):
        if not np.all(np.isfinite(vector)) or not np.any(vector):
            report.failed[item.sha256] = f"{embedder.model_id}: the vector is all zeros or not finite"
        else:
            out[item.sha256] = vector


def embed_missing(store: Store, embedder: Embedder, items: Iterable[Item], batch_size: int = 64) -> EmbedReport:
    """Make sure every item has a vector of ``embedder``'s model; returns what was reused, embedded, failed.

    Items are registered in the store (path/text/metadata); vectors are written in one batched
    write after all calls, and only for calls that succeeded.
    """
    record = store.register_model(embedder.spec)
    report = EmbedReport(record.model_id)
    unique: dict[str, Item] = {}
    for item in items:
        report.requested += 1
        unique.setdefault(item.sha256, item)
    report.unique = len(unique)
    if unique:
        store.put_items(unique.values())
    present = store.existing(record, unique)
    report.reused = len(present)
    missing = [item for sha, item in unique.items() if sha not in present]
    report.max_tokens = embedder.max_tokens
    report.truncated = embedder.over_limit(missing) if missing else {}
    new: dict[str, np.ndarray] = {}
    streak = [0]  # consecutive failed calls
    for start in range(0, len(missing), batch_size):
        _embed_batch(embedder, missing[start : start + batch_size], report, new, streak)
    if new:
        store.put_many(record, new)
    report.embedded = len(new)
    return report


@dataclass
class EmbeddingDataset:
    """``X`` (one row per labelled item with a vector), ``y`` (its consensus label) and the item hashes."""

    model_id: str
    task: str
    hashes: list[str]
    X: np.ndarray
    y: list[str]
    report: EmbedReport
    unlabelled: int = 0
    no_consensus: int = 0


def build_dataset(
    store: Store, embedder: Embedder, task: str, batches: Iterable[Sequence[Item]], batch_size: int = 64, min_agreement: float = 0.0
) -> EmbeddingDataset:
    """Seed 003 §1: for each pulled batch hash/dedupe/lookup/embed/write, then join the task's consensus labels."""
    from aesthetic_platform.embeddings.labels import consensus

    total = EmbedReport(embedder.model_id)
    order: dict[str, None] = {}
    for batch in batches:
        total.add(embed_missing(store, embedder, batch, batch_size=batch_size))
        order.update(dict.fromkeys(item.sha256 for item in batch))
    total.unique = len(order)  # distinct across batches, not the sum of each batch's distinct items
    agreed = {c.item: c for c in consensus(store, task, items=list(order))}
    vectors = store.get_many(embedder.spec, [sha for sha in order if sha in agreed])
    hashes, rows, labels = [], [], []
    no_consensus = 0
    for sha in order:
        verdict = agreed.get(sha)
        if verdict is None or sha not in vectors:
            continue
        if verdict.label is None or verdict.agreement < min_agreement:
            no_consensus += 1
            continue
        hashes.append(sha)
        rows.append(vectors[sha])
        labels.append(verdict.label)
    matrix = np.stack(rows) if rows else np.zeros((0, embedder.spec.dimension), dtype=np.float32)
    unlabelled = sum(1 for sha in order if sha not in agreed)
    return EmbeddingDataset(embedder.model_id, task, hashes, matrix, labels, total, unlabelled, no_consensus)
