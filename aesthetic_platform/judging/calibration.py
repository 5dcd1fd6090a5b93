"""How far the judge can be trusted (seed 000 Phase 1.1: "the judge prompt is the foundation").

Four measurements, each with the number of cases behind it:

* JSON validity: the share of replies that parsed on the first try, and after the one
  repair request (calls that never got a reply — timeouts, 5xx — are counted apart);
* swap consistency: the share of pairs judged in both orders whose winner did not
  flip, plus per-dimension agreement on which image is better;
* repeat agreement: a sample of pairs judged again (same order, a repeat cache key so
  re-materializing does not pay again) — the winner must not change;
* human agreement: the judge's pick on ``human_preferences`` pairs, on the
  dimension the human judged (``total`` when the judge does not score it).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.judging.base import ImageRef, Judge, JudgeRequest
from aesthetic_platform.judging.cache import VerdictCache
from aesthetic_platform.judging.run import judge_with_cache
from aesthetic_platform.schemas import HumanPreference, Judgment

REPEAT_INDEX = 1


@dataclass(frozen=True)
class Rate:
    agree: int
    total: int

    @property
    def value(self) -> float | None:
        return self.agree / self.total if self.total else None

    def text(self) -> str:
        return f"{self.value:.1%} ({self.agree}/{self.total})" if self.total else "n/a (0 cases)"


@dataclass
class CalibrationReport:
    judge_model: str
    prompt_version: str
    calls: int
    failed: int
    transport_failures: int
    valid_first_try: Rate
    valid_after_repair: Rate
    swap_consistency: Rate
    swap_dimension_agreement: dict[str, Rate]
    repeat_agreement: Rate
    human_agreement: Rate
    human_skipped: int
    other_judges_rows: int
    repeat_calls: int = 0
    human_calls: int = 0
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float | int | None]:
        return {
            "calls": self.calls,
            "failed": self.failed,
            "json_valid_first_try": self.valid_first_try.value,
            "json_valid_after_repair": self.valid_after_repair.value,
            "swap_consistency": self.swap_consistency.value,
            "swap_pairs": self.swap_consistency.total,
            "repeat_agreement": self.repeat_agreement.value,
            "repeat_pairs": self.repeat_agreement.total,
            "human_agreement": self.human_agreement.value,
            "human_pairs": self.human_agreement.total,
        }

    def to_json(self) -> dict:
        data = asdict(self)
        data["metrics"] = self.metrics()
        return data

    def markdown(self) -> str:
        lines = [
            f"# Judge calibration: `{self.judge_model}` / `{self.prompt_version}`",
            "",
            "| measurement | value | what it means |",
            "| --- | --- | --- |",
            f"| JSON valid, first try | {self.valid_first_try.text()} | replies that parsed without a repair request |",
            f"| JSON valid after one repair | {self.valid_after_repair.text()} | replies usable after the single repair request |",
            f"| no reply (transport) | {self.transport_failures} of {self.calls} calls | timeouts, 5xx, 429 past the retry budget |",
            f"| position-swap consistency | {self.swap_consistency.text()} | pairs judged in both orders whose winner did not flip |",
            f"| repeat agreement | {self.repeat_agreement.text()} | sampled pairs judged again: same winner |",
            f"| agreement with humans | {self.human_agreement.text()} | human_preferences pairs where the judge picks the human's winner |",
        ]
        if self.swap_dimension_agreement:
            lines += ["", "Per-dimension swap agreement (same better image in both orders):", ""]
            lines += [f"- `{d}`: {r.text()}" for d, r in self.swap_dimension_agreement.items()]
        if self.human_skipped:
            lines.append(f"\n{self.human_skipped} human pair(s) skipped: an image file is missing.")
        lines += [f"\n{note}" for note in self.notes]
        return "\n".join(lines) + "\n"


def validity(rows: Sequence[Judgment]) -> tuple[Rate, Rate, int]:
    """(valid first try, valid after repair, transport failures) over calls that got a reply."""
    replied = [r for r in rows if not (r.status == "failed" and r.error_kind == "transport")]
    first = sum(r.status == "judged" and not r.repaired for r in replied)
    after = sum(r.status == "judged" for r in replied)
    return Rate(first, len(replied)), Rate(after, len(replied)), len(rows) - len(replied)


def swap_agreement(rows: Sequence[Judgment]) -> tuple[Rate, dict[str, Rate]]:
    by_pair: dict[str, dict[str, Judgment]] = defaultdict(dict)
    for row in rows:
        if row.status == "judged":
            by_pair[row.pair_id][row.order] = row
    both = [(p["ab"], p["ba"]) for p in by_pair.values() if len(p) == 2]
    winners = Rate(sum(ab.winner == ba.winner for ab, ba in both), len(both))
    per_dim: dict[str, Rate] = {}
    for dim in (both[0][0].scores_a or {}) if both else ():
        same = sum(_sign(ab, dim) == _sign(ba, dim) for ab, ba in both)
        per_dim[dim] = Rate(same, len(both))
    return winners, per_dim


def _sign(row: Judgment, dim: str) -> int:
    gap = (row.scores_a or {})[dim] - (row.scores_b or {})[dim]
    return (gap > 0) - (gap < 0)


def _request(row: Judgment) -> JudgeRequest:
    return JudgeRequest(
        row.prompt, ImageRef(row.image_a_path, row.image_a_sha256), ImageRef(row.image_b_path, row.image_b_sha256),
        label=f"{row.pair_id}:repeat",
    )


def repeat_agreement(judge: Judge, rows: Sequence[Judgment], cache: VerdictCache, sample: int, seed: int) -> tuple[Rate, int]:
    """Judge a sample of judged 'ab' rows again under a repeat cache key; compare winners."""
    candidates = sorted((r for r in rows if r.status == "judged" and r.order == "ab"), key=lambda r: r.pair_id)
    chosen = random.Random(seed).sample(candidates, min(sample, len(candidates)))
    outcomes = judge_with_cache(judge, [_request(r) for r in chosen], cache, repeat=REPEAT_INDEX)
    same = total = 0
    for row, outcome in zip(chosen, outcomes, strict=True):
        if outcome.verdict.ok:
            total += 1
            same += {"A": "a", "B": "b"}[outcome.verdict.winner] == row.winner
    return Rate(same, total), sum(not o.from_cache for o in outcomes)


def _human_request(human: HumanPreference) -> tuple[JudgeRequest, bool]:
    """The human pair shown in canonical (sha-sorted) order, so the human's winner is not always A."""
    winner = ImageRef(human.winner_path, sha256_file(human.winner_path))
    loser = ImageRef(human.loser_path, sha256_file(human.loser_path))
    winner_first = winner.sha256 <= loser.sha256
    first, second = (winner, loser) if winner_first else (loser, winner)
    return JudgeRequest(human.prompt, first, second, label=human.pair_id), winner_first


def human_agreement(judge: Judge, humans: Sequence[HumanPreference], cache: VerdictCache) -> tuple[Rate, int, int]:
    """(agreement, skipped for missing files, judge calls) on the human pairs."""
    usable = [h for h in humans if Path(h.winner_path).is_file() and Path(h.loser_path).is_file()]
    planned = [_human_request(h) for h in usable]
    outcomes = judge_with_cache(judge, [request for request, _ in planned], cache)
    agree = total = 0
    for human, (_, winner_first), outcome in zip(usable, planned, outcomes, strict=True):
        v = outcome.verdict
        if not v.ok:
            continue
        dim = human.dimension if human.dimension in (v.scores_a or {}) else "total"
        gap = (v.scores_a or {})[dim] - (v.scores_b or {})[dim]
        total += 1
        agree += gap > 0 if winner_first else gap < 0
    return Rate(agree, total), len(humans) - len(usable), sum(not o.from_cache for o in outcomes)


class CalibrationConfig(BaseModel):
    """How much extra judging calibration may spend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repeat_sample: int = Field(default=8, ge=0, description="Pairs judged a second time to measure repeat agreement.")
    seed: int = Field(default=0, description="Seed of the repeat sample.")


def calibrate(
    judge: Judge, judgments: Sequence[Judgment], cache: VerdictCache, humans: Sequence[HumanPreference] = (),
    config: CalibrationConfig = CalibrationConfig(),
) -> CalibrationReport:
    """Calibration of ``judge`` over its own rows in ``judgments`` (other judges' rows are counted, not used)."""
    own = [r for r in judgments if r.judge_model == judge.model and r.judge_prompt_version == judge.prompt_version]
    first, after, transport = validity(own)
    swap, per_dim = swap_agreement(own)
    repeat, repeat_calls = repeat_agreement(judge, own, cache, config.repeat_sample, config.seed)
    human, skipped, human_calls = human_agreement(judge, humans, cache)
    report = CalibrationReport(
        judge_model=judge.model, prompt_version=judge.prompt_version, calls=len(own),
        failed=sum(r.status == "failed" for r in own), transport_failures=transport,
        valid_first_try=first, valid_after_repair=after, swap_consistency=swap, swap_dimension_agreement=per_dim,
        repeat_agreement=repeat, human_agreement=human, human_skipped=skipped,
        other_judges_rows=len(judgments) - len(own), repeat_calls=repeat_calls, human_calls=human_calls,
    )
    if report.other_judges_rows:
        report.notes.append(
            f"{report.other_judges_rows} judgment row(s) come from another judge or prompt version and are not calibrated here."
        )
    if not humans:
        report.notes.append("No human_preferences table yet: agreement with humans is not measured (the workbench builds it).")
    return report
