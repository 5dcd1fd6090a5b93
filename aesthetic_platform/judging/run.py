"""Judge a batch: plan pairs, reuse cached verdicts, call the judge for the rest, write the table.

The judge only ever sees the calls the cache cannot answer, and every verdict is
written to the cache the moment it returns, so re-materializing or backfilling a
batch calls the judge for missing (or previously failed) pairs only, and a crash
loses at most the calls in flight. One process judges a batch at a time: a second
(two overlapping backfills, a re-run launched while the first still runs) waits, then
finds the first one's verdicts in the cache instead of paying for every call again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import held_exclusively
from aesthetic_platform.generation import load_manifest
from aesthetic_platform.judging.base import ImageRef, Judge, JudgeRequest, Verdict
from aesthetic_platform.judging.cache import CacheKey, VerdictCache
from aesthetic_platform.judging.pairs import CandidatePair, plan_pairs
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts import load_prompts
from aesthetic_platform.schemas import JUDGMENTS, Judgment, PairOrder

ORDERS: tuple[PairOrder, ...] = ("ab", "ba")
ProgressFn = Callable[[int, int], None]
log = logging.getLogger(__name__)


def judge_cache(root: DataRoot) -> VerdictCache:
    return VerdictCache(root.judge_cache)


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    from_cache: bool
    judged_at: dt.datetime


class JudgingConfig(BaseModel):
    """Which pairs of a batch are judged, and how many failed calls a run tolerates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    both_orders: bool = Field(
        default=True, description="Judge each pair in both orders; pairs whose winner flips are flagged inconsistent."
    )
    max_pairs_per_prompt: int = Field(default=0, ge=0, description="0: all pairs among a prompt's candidates; N: a fixed sample of N.")
    max_failure_rate: float = Field(
        default=0.1, ge=0, le=1, description="The run fails above this share of failed calls (after writing what succeeded)."
    )
    warn_failure_rate: float = Field(default=0.02, ge=0, le=1, description="The failure-rate check warns above this share.")


def judge_with_cache(
    judge: Judge, requests: Sequence[JudgeRequest], cache: VerdictCache, repeat: int = 0,
    progress: ProgressFn | None = None,
) -> list[Outcome]:
    """One outcome per request: cached when known, else judged now and cached if it succeeded."""
    keys = [CacheKey.for_request(judge, r, repeat) for r in requests]
    outcomes: list[Outcome | None] = []
    for key in keys:
        hit = cache.get(key)
        outcomes.append(Outcome(hit.verdict, True, hit.judged_at) if hit else None)
    missing = [i for i, o in enumerate(outcomes) if o is None]
    done = 0

    def store(position: int, verdict: Verdict) -> None:
        nonlocal done
        index = missing[position]
        judged_at = dt.datetime.now(dt.UTC)
        if verdict.ok:
            cache.put(keys[index], verdict, judged_at)
        outcomes[index] = Outcome(verdict, False, judged_at)
        done += 1
        if progress:
            progress(done, len(missing))

    judge.judge_all([requests[i] for i in missing], store)
    lost = [requests[i].label for i, o in enumerate(outcomes) if o is None]
    if lost:
        raise RuntimeError(f"judge {judge.model!r} returned no verdict for {len(lost)} request(s), e.g. {lost[:3]}")
    return outcomes  # type: ignore[return-value]


def pair_request(pair: CandidatePair, order: PairOrder) -> JudgeRequest:
    a = ImageRef(pair.a.path, pair.a.sha256)
    b = ImageRef(pair.b.path, pair.b.sha256)
    first, second = (a, b) if order == "ab" else (b, a)
    return JudgeRequest(pair.prompt.text, first, second, label=f"{pair.pair_id}:{order}")


def judgment_row(pair: CandidatePair, order: PairOrder, outcome: Outcome, judge: Judge) -> Judgment:
    """Map the verdict's presentation positions (A first) back to the pair's canonical a/b."""
    v = outcome.verdict
    flip = order == "ba"
    scores_a, scores_b = (v.scores_b, v.scores_a) if flip else (v.scores_a, v.scores_b)
    scores_a, scores_b = _in_order(scores_a, judge.dimensions), _in_order(scores_b, judge.dimensions)
    canonical: dict[str, Literal["a", "b"]] = {"A": "b", "B": "a"} if flip else {"A": "a", "B": "b"}
    winner: Literal["a", "b", ""] = "" if not v.ok else canonical[v.winner]
    return Judgment(
        pair_id=pair.pair_id, batch=pair.a.batch, prompt_id=pair.prompt.prompt_id, prompt=pair.prompt.text,
        prompt_hash=pair.prompt.text_hash, order=order, image_a_id=pair.a.image_id, image_b_id=pair.b.image_id,
        image_a_path=pair.a.path, image_b_path=pair.b.path, image_a_sha256=pair.a.sha256, image_b_sha256=pair.b.sha256,
        ratio_a=pair.a.ratio, ratio_b=pair.b.ratio, status="judged" if v.ok else "failed", error=v.error,
        error_kind=v.error_kind, scores_a=scores_a, scores_b=scores_b, winner=winner, reason=v.reason,
        raw_response=v.raw, repaired=v.repaired, judge_model=judge.model, judge_prompt_version=judge.prompt_version,
        from_cache=outcome.from_cache, attempts=v.attempts, latency_ms=v.latency_ms, prompt_tokens=v.prompt_tokens,
        completion_tokens=v.completion_tokens, judged_at=outcome.judged_at,
    )


def _in_order(scores: dict[str, float] | None, dimensions: Sequence[str]) -> dict[str, float] | None:
    """Scores in the configured dimension order (cached verdicts come back key-sorted)."""
    return None if scores is None else {d: scores[d] for d in dimensions}


def mark_consistency(rows: list[Judgment]) -> list[Judgment]:
    """``consistent`` on both rows of a pair whose two orders were both judged."""
    winners: dict[str, dict[str, str]] = {}
    for row in rows:
        if row.status == "judged":
            winners.setdefault(row.pair_id, {})[row.order] = row.winner
    marked = []
    for row in rows:
        orders = winners.get(row.pair_id, {})
        consistent = orders["ab"] == orders["ba"] if row.status == "judged" and len(orders) == 2 else None
        marked.append(row.model_copy(update={"consistent": consistent}))
    return marked


@dataclass(frozen=True)
class BatchJudging:
    batch: str
    rows: list[Judgment]
    path: Path
    calls: int  # verdicts requested from the judge in this run (cache misses)
    excluded: dict[str, str] = field(default_factory=dict)  # image id -> why the content audit kept it from the judge

    @property
    def failed(self) -> list[Judgment]:
        return [r for r in self.rows if r.status == "failed"]

    @property
    def from_cache(self) -> int:
        return sum(r.from_cache for r in self.rows)


def judge_batch(
    root: DataRoot, batch: str, judge: Judge, config: JudgingConfig = JudgingConfig(),
    cache: VerdictCache | None = None, progress: ProgressFn | None = None, excluded: Mapping[str, str] | None = None,
) -> BatchJudging:
    """Judge every planned pair of one ``prompt_batch`` partition and write its judgments table.

    ``excluded`` (image id -> reason, from the content audit) never reaches the judge. While another
    process judges the same batch this one waits for it (then the cache answers what it judged)."""
    waiting = f"batch {batch!r} is being judged by another process: waiting for it, then its verdicts come from the cache"
    with held_exclusively(root.batch_lock("judgments", batch), on_wait=lambda: log.warning(waiting)):
        return _judge_batch(root, batch, judge, config, cache, progress, excluded)


def _judge_batch(
    root: DataRoot, batch: str, judge: Judge, config: JudgingConfig, cache: VerdictCache | None, progress: ProgressFn | None,
    excluded: Mapping[str, str] | None,
) -> BatchJudging:
    candidates = load_manifest(root, batch)
    if not candidates:
        raise FileNotFoundError(f"batch {batch!r} has no candidate images; materialize candidate_images first")
    excluded = dict(excluded or {})
    candidates = [c for c in candidates if c.image_id not in excluded]
    pairs = plan_pairs(load_prompts(root, batch), candidates, config.max_pairs_per_prompt)
    orders = ORDERS if config.both_orders else ORDERS[:1]
    planned = [(pair, order) for pair in pairs for order in orders]
    outcomes = judge_with_cache(judge, [pair_request(p, o) for p, o in planned], cache or judge_cache(root), progress=progress)
    rows = mark_consistency([judgment_row(p, o, out, judge) for (p, o), out in zip(planned, outcomes, strict=True)])
    path = JUDGMENTS.write(rows, root.table("judgments", batch))
    return BatchJudging(batch, rows, path, calls=sum(not o.from_cache for o in outcomes), excluded=excluded)


def failure_rate(rows: Sequence[Judgment]) -> float:
    return sum(r.status == "failed" for r in rows) / len(rows) if rows else 0.0


def judging_summary(runs: Sequence[BatchJudging]) -> dict[str, float | int]:
    """What a judging run did, over its batches: verdicts, calls, cache, failures, consistency, tokens, latency."""
    rows = [r for run in runs for r in run.rows]
    judged = [r for r in rows if r.status == "judged"]
    swapped = [r for r in judged if r.consistent is not None]
    return {
        "verdicts": len(rows),
        "rows": len(rows),
        "judge_calls": sum(run.calls for run in runs),
        "from_cache": sum(run.from_cache for run in runs),
        "failed": sum(len(run.failed) for run in runs),
        "failure_rate": failure_rate(rows),
        "inconsistent_rows": sum(r.consistent is False for r in swapped),
        "excluded_by_audit": sum(len(run.excluded) for run in runs),
        "tokens": sum(r.prompt_tokens + r.completion_tokens for r in rows if not r.from_cache),
        "mean_latency_ms": (sum(r.latency_ms for r in judged) / len(judged)) if judged else 0.0,
    }


def load_judgments(root: DataRoot) -> list[Judgment]:
    return JUDGMENTS.rows(JUDGMENTS.read_many(root.batch_tables("judgments")), root)
