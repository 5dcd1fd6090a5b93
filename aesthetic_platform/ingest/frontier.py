"""The resumable crawl frontier: one SQLite database per source.

Every URL the crawl knows is a row with its kind (``list`` / ``detail`` / ``image``),
its state and, once done or skipped, the reason. A crawl claims pending URLs
(``in_progress``) and settles each one in a single transaction, and a stored image is
recorded (sha256 -> provenance) in the same transaction that marks its URL done. So a
killed crawl loses at most the URLs that were in flight: the next start puts them back
to pending and continues; nothing done is fetched again, and content already stored
under its sha256 is never stored twice.

Runs: a start after a finished run begins a new run (list pages re-read when
``refresh_list_pages``, transient failures retried when ``retry_failed``); a start
after an unfinished (killed) run resumes it as it was.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

Kind = Literal["list", "detail", "image"]
State = Literal["pending", "in_progress", "done", "skipped", "failed"]
#: Images first, then details, then list pages: a crawl stores what it has found before it looks for more.
_PRIORITY = {"image": 0, "detail": 1, "list": 2}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    url TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT '',
    parent TEXT NOT NULL DEFAULT '',
    meta TEXT NOT NULL DEFAULT '{}',
    sha256 TEXT NOT NULL DEFAULT '',
    tries INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS urls_pending ON urls (state, priority);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    finished_at REAL
);
"""


@dataclass(frozen=True)
class FrontierItem:
    url: str
    kind: Kind
    parent: str
    meta: dict[str, Any]


@dataclass(frozen=True)
class RunStart:
    run_id: int
    resumed: bool
    requeued: int  # in-flight URLs of a killed run put back to pending


class Frontier:
    """SQLite-backed URL states of one source (one writer: the crawl's event loop)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Frontier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs ------------------------------------------------------------------------
    def start_run(self, seeds: list[tuple[str, Kind, dict[str, Any]]], refresh_list_pages: bool, retry_failed: bool) -> RunStart:
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            last = self._db.execute("SELECT id, finished_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            requeued = self._db.execute("UPDATE urls SET state='pending' WHERE state='in_progress'").rowcount
            self._add_many(seeds, parent="")
            if last is not None and last[1] is None:
                return RunStart(last[0], True, requeued)
            if last is not None:
                if refresh_list_pages:
                    self._db.execute("UPDATE urls SET state='pending', reason='' WHERE kind='list' AND state='done'")
                if retry_failed:
                    self._db.execute("UPDATE urls SET state='pending' WHERE state='failed'")
            run_id = self._db.execute("INSERT INTO runs (started_at) VALUES (?)", (time.time(),)).lastrowid
            assert run_id is not None  # set by every successful INSERT
            return RunStart(int(run_id), False, requeued)

    def finish_run(self, run_id: int) -> None:
        self._db.execute("UPDATE runs SET finished_at=? WHERE id=?", (time.time(), run_id))

    # --- URLs ------------------------------------------------------------------------
    def _add_many(self, items: list[tuple[str, Kind, dict[str, Any]]], parent: str) -> int:
        now = time.time()
        cursor = self._db.executemany(
            "INSERT OR IGNORE INTO urls (url, kind, priority, parent, meta, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            [(url, kind, _PRIORITY[kind], parent, json.dumps(meta, ensure_ascii=False, sort_keys=True), now) for url, kind, meta in items],
        )
        return cursor.rowcount

    def add(self, items: list[tuple[str, Kind, dict[str, Any]]], parent: str = "") -> int:
        """Add new URLs as pending (known URLs keep their state); returns how many were new."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return self._add_many(items, parent)

    def claim(self, kinds: tuple[Kind, ...] = ("image", "detail", "list")) -> FrontierItem | None:
        """The next pending URL of one of ``kinds`` (images first), now ``in_progress``."""
        if not kinds:
            return None
        marks = ",".join("?" * len(kinds))
        row = self._db.execute(
            f"SELECT url, kind, parent, meta FROM urls WHERE state='pending' AND kind IN ({marks}) ORDER BY priority, rowid LIMIT 1",
            kinds,
        ).fetchone()
        if row is None:
            return None
        self._db.execute("UPDATE urls SET state='in_progress', tries=tries+1, updated_at=? WHERE url=?", (time.time(), row[0]))
        return FrontierItem(row[0], row[1], row[2], json.loads(row[3]))

    def settle(self, url: str, state: State, reason: str = "", detail: str = "", sha256: str = "") -> None:
        self._db.execute(
            "UPDATE urls SET state=?, reason=?, detail=?, sha256=?, updated_at=? WHERE url=?",
            (state, reason, detail[:1000], sha256, time.time(), url),
        )

    # --- images ----------------------------------------------------------------------
    def stored(self, sha256: str) -> bool:
        return self._db.execute("SELECT 1 FROM images WHERE sha256=?", (sha256,)).fetchone() is not None

    def store_image(self, url: str, sha256: str, record: dict[str, Any]) -> None:
        """Record a stored image and mark its URL done, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "INSERT OR IGNORE INTO images (sha256, url, record) VALUES (?, ?, ?)",
                (sha256, url, json.dumps(record, ensure_ascii=False, sort_keys=True, default=str)),
            )
            self.settle(url, "done", sha256=sha256)

    def image_records(self) -> list[dict[str, Any]]:
        return [json.loads(r[0]) for r in self._db.execute("SELECT record FROM images ORDER BY rowid")]

    # --- reporting -------------------------------------------------------------------
    def state_counts(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for kind, state, n in self._db.execute("SELECT kind, state, COUNT(*) FROM urls GROUP BY kind, state"):
            counts.setdefault(kind, {})[state] = n
        return counts

    def reasons(self, state: State) -> Counter:
        return Counter(dict(self._db.execute("SELECT reason, COUNT(*) FROM urls WHERE state=? GROUP BY reason", (state,)).fetchall()))

    def urls_in_state(self, state: State, kind: Kind | None = None) -> list[str]:
        if kind is None:
            return [r[0] for r in self._db.execute("SELECT url FROM urls WHERE state=?", (state,))]
        return [r[0] for r in self._db.execute("SELECT url FROM urls WHERE state=? AND kind=?", (state, kind))]
