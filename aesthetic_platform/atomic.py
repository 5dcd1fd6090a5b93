"""Crash-safe file writes: nothing already stored is lost or half-written.

Every writer in the platform goes through these helpers: write to a temporary file
in the same folder, fsync, then ``os.replace`` (atomic on POSIX). Appends to logs are
single ``write`` calls followed by fsync, under an exclusive ``flock`` so concurrent
writers never interleave lines. ``held_exclusively`` gives one process at a time a piece of
work (a crawl source, a training run, a batch being judged or rendered, a promotion, a LoRA
work folder) and never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str) -> Path:
    return write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike[str], obj: Any) -> Path:
    return write_text(target, json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n")


def write_with(target: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Let a library write (e.g. ``df.write_parquet``) to a temp path, then swap it in."""
    with atomic_path(target) as tmp:
        writer(tmp)
    return Path(target)


def append_jsonl(target: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line durably; safe with concurrent writers (threads or processes)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode("utf-8")
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextlib.contextmanager
def held_exclusively(
    lock_file: str | os.PathLike[str], busy: Callable[[], Exception] | None = None, on_wait: Callable[[], None] | None = None
) -> Iterator[None]:
    """An exclusive ``flock`` on ``lock_file`` for the block: ``busy()`` raised at once while another holder has it,
    or, without ``busy``, a wait until the holder lets go (``on_wait()`` called first, to say so).

    A lock, not a marker file: the kernel drops it when its holder exits, however it exits (a ``kill -9``
    leaves nothing to clean up), and two opens conflict within one process too, so threads are kept
    apart as well as processes."""
    lock_file = Path(lock_file)
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if busy is not None:
                raise busy() from None
            if on_wait is not None:
                on_wait()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_jsonl(target: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a JSONL log. A torn last line (a crash mid-append) is skipped; any other bad line raises."""
    target = Path(target)
    if not target.exists():
        return []
    complete, _, tail = target.read_text(encoding="utf-8").rpartition("\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(complete.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{target}: line {number} is not valid JSON ({exc.msg})") from exc
    if tail.strip():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(tail))
    return records


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def swap_dir(new: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Replace the folder ``target`` by the fully written folder ``new`` (same file system).

    Two renames: old contents never mix with new ones, and a crash in between leaves the
    old folder under a hidden ``.<name>.<id>.old`` name rather than losing it.
    """
    new, target = Path(new), Path(target)
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    _fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    return target
