"""Verdict cache: one small JSON file per (judge, its reply settings, image A, image B, order).

Keys are content addresses — the sha256 of both images' bytes — so the same pair of
images shown in the same order is never judged twice under the same judge and prompt,
whatever batch or pair id it comes from. The judge's ``fingerprint`` (endpoint, image
size sent, sampling parameters) is part of the key: changing any of them asks again. Each verdict is written atomically the
moment its call returns, so a crash mid-batch loses at most the calls in flight.
Only successful verdicts are stored: a failed pair is retried on the next run.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aesthetic_platform.atomic import write_json
from aesthetic_platform.judging.base import Judge, JudgeRequest, Verdict

CACHE_FORMAT = 2


@dataclass(frozen=True)
class CacheKey:
    """``image_a``/``image_b`` are the pair's sha256s in canonical (sorted) order;
    ``order`` says which was shown first ("ab" or "ba"), plus "+rN" for the N-th repeat."""

    judge_model: str
    prompt_version: str
    judge_settings: str
    image_a: str
    image_b: str
    order: str

    @classmethod
    def for_request(cls, judge: Judge, request: JudgeRequest, repeat: int = 0) -> CacheKey:
        first, second = request.first.sha256, request.second.sha256
        order = "ab" if first <= second else "ba"
        a, b = sorted((first, second))
        return cls(judge.model, judge.prompt_version, judge.fingerprint, a, b, order + (f"+r{repeat}" if repeat else ""))

    def digest(self) -> str:
        payload = json.dumps(list(_key_fields(self)))
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedVerdict:
    verdict: Verdict
    judged_at: dt.datetime


class VerdictCache:
    """Verdicts under ``<data root>/cache/judge``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def path(self, key: CacheKey) -> Path:
        digest = key.digest()
        return self.folder / digest[:2] / f"{digest}.json"

    def get(self, key: CacheKey) -> CachedVerdict | None:
        path = self.path(key)
        if not path.exists():
            return None
        try:
            record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"judge cache entry {path} is not valid JSON ({exc.msg}); delete it to re-judge") from exc
        if record.get("key") != list(_key_fields(key)):
            raise ValueError(f"judge cache entry {path} belongs to another key; delete it to re-judge")
        return CachedVerdict(Verdict.from_json(record["verdict"]), dt.datetime.fromisoformat(record["judged_at"]))

    def put(self, key: CacheKey, verdict: Verdict, judged_at: dt.datetime) -> Path:
        if not verdict.ok:
            raise ValueError("only successful verdicts are cached; failed pairs must be retried")
        record = {"format": CACHE_FORMAT, "key": list(_key_fields(key)), "judged_at": judged_at.isoformat(), "verdict": verdict.to_json()}
        return write_json(self.path(key), record)

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.json")) if self.folder.is_dir() else 0


def _key_fields(key: CacheKey) -> tuple[str, ...]:
    return (key.judge_model, key.prompt_version, key.judge_settings, key.image_a, key.image_b, key.order)
