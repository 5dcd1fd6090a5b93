"""The champion gate: a candidate replaces the champion only if it is not worse, on the same set.

Both models are scored on the frozen evaluation set. The reference for every dimension
is the better of the current champion and the best champion ever recorded on that set
(``models/champion_history.jsonl``), so a chain of small, tolerated regressions cannot
walk the champion down: the total may sit at most ``total_tolerance`` below the best
recorded, each other dimension at most ``dimension_tolerance``. Besides the dimensions,
the gate compares the total on same-ratio pairs (``same_ratio.total``, choosing among
seeds at one size: ``total_tolerance``) and the best-of-N hit rate (``best_of_n``:
``best_of_n_tolerance``, wider because it counts one outcome per (prompt, ratio) group,
not per pair).

Passing the gate and becoming champion are two decisions. A candidate within tolerance
passes (the run is not failed: a retrain that is about as good is not an error), but the
champion moves only if its ``total`` is at or above the reference, with no tolerance; so
the champion's headline never falls below the best recorded champion on the set, and
every other gated metric stays within its tolerance of its own best.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import append_jsonl, read_jsonl
from aesthetic_platform.paths import DataRoot

HEADLINE_DIMENSION = "total"
SAME_RATIO_HEADLINE = f"same_ratio.{HEADLINE_DIMENSION}"
BEST_OF_N = "best_of_n"
HEADLINE_METRICS = (HEADLINE_DIMENSION, SAME_RATIO_HEADLINE, BEST_OF_N)


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    total_tolerance: float = Field(default=0.01, ge=0, le=1, description="How far below the best recorded champion `total` may be.")
    dimension_tolerance: float = Field(
        default=0.03, ge=0, le=1, description="How far below the best recorded champion any other dimension may be."
    )
    best_of_n_tolerance: float = Field(
        default=0.05, ge=0, le=1,
        description="How far below the best recorded champion the best-of-N hit rate (total, same-ratio groups) may be; "
        "the same-ratio total uses total_tolerance.",
    )

    def tolerance(self, metric: str) -> float:
        if metric == BEST_OF_N:
            return self.best_of_n_tolerance
        return self.total_tolerance if metric in (HEADLINE_DIMENSION, SAME_RATIO_HEADLINE) else self.dimension_tolerance


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    reasons: list[str]
    reference: dict[str, float]
    #: Whether the candidate may become champion: passed, and ``total`` not below its reference.
    promote: bool = False
    #: Why a passing candidate stays a candidate (empty when it is promoted or failed).
    held_back: list[str] = field(default_factory=list)

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    @property
    def promotion(self) -> str:
        """One line for the report and the UI: promoted, or why not."""
        if self.promote:
            return f"promoted: {HEADLINE_DIMENSION} at or above the best recorded champion, every gated metric within tolerance"
        if not self.passed:
            return "not promoted: the gate failed"
        return "not promoted (gate passed within tolerance): " + "; ".join(self.held_back)


def history_path(root: DataRoot):
    return root.champion_history


def best_recorded(root: DataRoot, eval_set_digest: str) -> dict[str, float]:
    """Per dimension, the best accuracy any promoted champion had on this evaluation set."""
    best: dict[str, float] = {}
    path = history_path(root)
    for record in read_jsonl(path) if path.exists() else []:
        if record.get("eval_set") != eval_set_digest:
            continue
        for dim, accuracy in record["accuracy"].items():
            if accuracy is not None and not math.isnan(accuracy):
                best[dim] = max(best.get(dim, accuracy), accuracy)
    return best


def record_champion(root: DataRoot, version: str, eval_set_digest: str, accuracy: Mapping[str, float]) -> None:
    append_jsonl(history_path(root), {
        "version": version, "eval_set": eval_set_digest, "accuracy": dict(accuracy),
        "promoted_at": dt.datetime.now(dt.UTC).isoformat(),
    })


def decide(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, recorded: Mapping[str, float], config: GateConfig
) -> GateDecision:
    """Pass only if no gated metric falls below its reference by more than its tolerance;
    promote only if the headline (``total``) does not fall below its reference at all.

    The tolerances bound every other metric against the best recorded champion, so none can
    drift down across retrains; demanding that every dimension also be at its all-time best
    would freeze the champion on noise, since a retrain nearly always loses a little somewhere."""
    reference = {d: max(v for v in (recorded.get(d), (champion or {}).get(d)) if v is not None and not math.isnan(v))
                 for d in candidate if _known(d, champion, recorded)}
    if not reference:
        return GateDecision(True, ["no champion recorded on this evaluation set: the candidate becomes champion"], {}, promote=True)
    reasons, passed, held_back = [], True, []
    for dim, ref in reference.items():
        tolerance = config.tolerance(dim)
        value = candidate[dim]
        ok = not math.isnan(value) and value >= ref - tolerance
        passed &= ok
        if ok and value < ref and dim == HEADLINE_DIMENSION:
            held_back.append(f"{dim} {value:.1%} is below the best recorded {ref:.1%}")
        if not ok or dim in HEADLINE_METRICS:
            verb = "keeps up with" if ok else "regresses below"
            reasons.append(f"{dim} {value:.1%} {verb} the best recorded {ref:.1%} (tolerance {tolerance:.1%})")
    promote = passed and not held_back
    return GateDecision(passed, reasons, reference, promote=promote, held_back=held_back if passed else [])


def _known(dim: str, champion: Mapping[str, float] | None, recorded: Mapping[str, float]) -> bool:
    values = [recorded.get(dim), (champion or {}).get(dim)]
    return any(v is not None and not math.isnan(v) for v in values)
