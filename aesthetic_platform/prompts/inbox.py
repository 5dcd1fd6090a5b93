"""Prompt files dropped into ``$AESTHETIC_HOME/inbox`` become new prompt batches.

Each file is handled on its own, so one bad file never holds up the others:

* **Rejected**: any failure while reading or validating it (a ``PromptFileError`` or
  anything else) moves it to ``inbox/rejected/`` with a ``<name>.error.txt`` beside it
  that says what is wrong.
* **Accepted**: the bytes are copied atomically to ``uploads/<batch>.<ext>`` (the run
  reads that copy), then the file moves to ``inbox/pending/<batch>.<ext>``. The batch
  key is the file stem plus 8 hex of the content hash, so a retry gives the same key.
* **Requested**: the orchestration layer asks for a run of every pending batch on every
  pass (with the batch as a stable run key, so a run is created once) and removes the
  pending file with ``mark_requested`` only once it sees that run. A crash anywhere in
  between leaves the file in the inbox or in ``pending/``, and the next pass picks it up:
  nothing accepted is lost.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.atomic import sha256_bytes, write_bytes, write_text
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts.files import PromptFileError, parse_prompt_bytes, read_prompt_bytes

PROMPT_FILE_SUFFIXES = (".csv", ".json")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: Room left in a 255-byte file name for ".error.txt" and the atomic writer's temp-file prefix and suffix.
_MAX_NOTE_STEM_BYTES = 200
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboxFile:
    batch: str
    upload_path: Path
    prompts: int


@dataclass(frozen=True)
class RejectedFile:
    path: Path
    error: str


@dataclass(frozen=True)
class PendingUpload:
    """An accepted file whose run has not been seen yet."""

    batch: str
    upload_path: Path
    pending_path: Path


def batch_key_for(path: Path, digest: str) -> str:
    """A safe, unique partition key: the file stem plus 8 hex of its content hash."""
    stem = _UNSAFE.sub("-", path.stem).strip("-._")[:80] or "upload"
    return f"{stem}-{digest[:8]}"


def _waiting_files(root: DataRoot) -> list[Path]:
    """Prompt files in the inbox, oldest first; a file that vanishes while listed is skipped."""
    found: list[tuple[float, str, Path]] = []
    for path in root.inbox.iterdir():
        if path.suffix.lower() not in PROMPT_FILE_SUFFIXES:
            continue
        try:
            if path.is_file():
                found.append((path.stat().st_mtime, path.name, path))
        except OSError:
            continue
    return [path for _, _, path in sorted(found)]


def accept_file(root: DataRoot, path: Path, data: bytes, prompts: int) -> InboxFile:
    """Store the upload copy of a validated file, then move the file to ``pending/`` (in that order)."""
    suffix = path.suffix.lower()
    batch = batch_key_for(path, sha256_bytes(data))
    upload = write_bytes(root.upload(batch, suffix), data)
    root.inbox_pending.mkdir(parents=True, exist_ok=True)
    os.replace(path, root.inbox_pending / f"{batch}{suffix}")
    return InboxFile(batch, upload, prompts)


def error_note_name(name: str) -> str:
    """``<name>.error.txt``, shortened (with a hash) when the name is too long to carry the suffix and a temp prefix."""
    if len(name.encode("utf-8")) <= _MAX_NOTE_STEM_BYTES:
        return f"{name}.error.txt"
    stem = name.encode("utf-8")[: _MAX_NOTE_STEM_BYTES - 9].decode("utf-8", errors="ignore")
    return f"{stem}-{sha256_bytes(name.encode('utf-8'))[:8]}.error.txt"


def reject_file(root: DataRoot, path: Path, error: str) -> RejectedFile:
    """Move a file to ``inbox/rejected/`` with its ``.error.txt``; if the move fails it is retried next pass."""
    target = root.inbox_rejected / path.name
    try:
        write_text(root.inbox_rejected / error_note_name(path.name), f"{error}\n")
        os.replace(path, target)
    except OSError as exc:
        log.warning("could not move rejected prompt file %s: %s", path, exc)
        return RejectedFile(path, f"{error} (not moved: {exc})")
    return RejectedFile(target, error)


def drain_inbox(root: DataRoot) -> tuple[list[InboxFile], list[RejectedFile]]:
    """Accept or reject every prompt file waiting in the inbox (oldest first), each on its own."""
    root.inbox.mkdir(parents=True, exist_ok=True)
    accepted: list[InboxFile] = []
    rejected: list[RejectedFile] = []
    for path in _waiting_files(root):
        try:
            data = read_prompt_bytes(path)
            prompts = len(parse_prompt_bytes(data, str(path)))
        except PromptFileError as exc:
            rejected.append(reject_file(root, path, str(exc)))
            continue
        except Exception as exc:  # noqa: BLE001 - whatever one file does, the others are still handled
            rejected.append(reject_file(root, path, f"{path}: cannot be imported: {type(exc).__name__}: {exc}"))
            continue
        try:
            accepted.append(accept_file(root, path, data, prompts))
        except Exception as exc:  # noqa: BLE001 - a storage failure is not the file's fault: it stays for the next pass
            log.warning("prompt file %s stays in the inbox until the next pass: %s", path, exc)
    return accepted, rejected


def pending_uploads(root: DataRoot) -> list[PendingUpload]:
    """Accepted files still waiting for their run (oldest first); a missing upload copy is written again."""
    folder = root.inbox_pending
    if not folder.is_dir():
        return []
    pending: list[PendingUpload] = []
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        if not path.is_file() or path.suffix.lower() not in PROMPT_FILE_SUFFIXES or path.name.startswith("."):
            continue
        batch, suffix = path.stem, path.suffix.lower()
        try:
            upload = root.upload(batch, suffix)
            if not upload.is_file():
                write_bytes(upload, path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("pending prompt file %s cannot be scheduled: %s", path, exc)
            continue
        pending.append(PendingUpload(batch, upload, path))
    return pending


def mark_requested(upload: PendingUpload) -> None:
    """The batch's run exists: the file leaves the inbox (its upload copy stays for the run)."""
    upload.pending_path.unlink(missing_ok=True)
