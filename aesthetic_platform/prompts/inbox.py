"""Prompt files dropped into ``$AESTHETIC_HOME/inbox`` become new prompt batches.

A file is validated before anything is scheduled. Accepted files are copied to
``uploads/<batch>.<ext>`` (the run reads that copy, so the inbox can be cleaned at
will); rejected files move to ``inbox/rejected/`` with a ``.error.txt`` beside them
that says what is wrong. Either way the file leaves the inbox, so it is handled once.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.atomic import sha256_file, write_bytes, write_text
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts.files import PromptFileError, read_prompt_file

PROMPT_FILE_SUFFIXES = (".csv", ".json")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InboxFile:
    batch: str
    upload_path: Path
    prompts: int


@dataclass(frozen=True)
class RejectedFile:
    path: Path
    error: str


def batch_key_for(path: Path, digest: str) -> str:
    """A safe, unique partition key: the file stem plus 8 hex of its content hash."""
    stem = _UNSAFE.sub("-", path.stem).strip("-._")[:80] or "upload"
    return f"{stem}-{digest[:8]}"


def uploads_dir(root: DataRoot) -> Path:
    return root.root / "uploads"


def drain_inbox(root: DataRoot) -> tuple[list[InboxFile], list[RejectedFile]]:
    """Accept or reject every prompt file waiting in the inbox (oldest first)."""
    root.inbox.mkdir(parents=True, exist_ok=True)
    accepted: list[InboxFile] = []
    rejected: list[RejectedFile] = []
    waiting = sorted(
        (p for p in root.inbox.iterdir() if p.is_file() and p.suffix.lower() in PROMPT_FILE_SUFFIXES),
        key=lambda p: (p.stat().st_mtime, p.name),
    )
    for path in waiting:
        try:
            records = read_prompt_file(path)
        except PromptFileError as exc:
            rejected_dir = root.inbox / "rejected"
            rejected_dir.mkdir(exist_ok=True)
            write_text(rejected_dir / f"{path.name}.error.txt", f"{exc}\n")
            shutil.move(path, rejected_dir / path.name)
            rejected.append(RejectedFile(rejected_dir / path.name, str(exc)))
            continue
        digest = sha256_file(path)
        batch = batch_key_for(path, digest)
        upload = write_bytes(uploads_dir(root) / f"{batch}{path.suffix.lower()}", path.read_bytes())
        path.unlink()
        accepted.append(InboxFile(batch, upload, len(records)))
    return accepted, rejected
