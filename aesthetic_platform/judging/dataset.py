"""The Parquet preference-pair dataset (seed 000 §7) built from all batches' judgments.

A pair enters the dataset when every order it was planned in was judged. With both
orders, its scores are the mean of the two verdicts (position bias averages out) and
``consistent`` says whether both orders named the same winner; an inconsistent pair
stays in the table but training must skip it. A pair whose mean totals tie carries
no preference on ``total`` and is left out, so the winner's total is always strictly
above the loser's. The loser may still win any other dimension.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.judging.pairs import check_fractions, split_for
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import PAIR_KINDS, PREFERENCE_PAIRS, RATIOS, DimScores, Judgment, PreferencePair
from aesthetic_platform.splits import DEFAULT_SPLIT_SALT


class SplitConfig(BaseModel):
    """How prompts are split: a salted hash of each prompt's normalized text decides its split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train_fraction: float = Field(default=0.8, ge=0, le=1, description="Share of prompts (by prompt hash) in train.")
    val_fraction: float = Field(default=0.1, ge=0, le=1, description="Share of prompts in val; the rest is test.")
    split_salt: str = Field(default=DEFAULT_SPLIT_SALT, description="Salt of the prompt-hash split; change it to draw a new split.")

    @model_validator(mode="after")
    def _fractions_fit(self) -> SplitConfig:
        check_fractions(self.fractions)
        return self

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (self.train_fraction, self.val_fraction, max(0.0, 1.0 - self.train_fraction - self.val_fraction))


@dataclass
class PairDataset:
    pairs: list[PreferencePair]
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> pairs left out

    def split_sizes(self) -> dict[str, int]:
        counts = Counter(p.split for p in self.pairs)
        return {s: counts.get(s, 0) for s in ("train", "val", "test")}

    def kind_sizes(self) -> dict[str, dict[str, int]]:
        """Pairs per split and kind: ``{split: {"same_ratio": n, "cross_ratio": n}}``."""
        counts: Counter[tuple[str, str]] = Counter((p.split, p.pair_kind) for p in self.pairs)
        return {s: {k: counts.get((s, k), 0) for k in PAIR_KINDS} for s in ("train", "val", "test")}


def _mean_scores(rows: Sequence[Judgment]) -> tuple[dict[str, float], dict[str, float]]:
    dims = list(rows[0].scores_a or {})
    mean_a = {d: sum((r.scores_a or {})[d] for r in rows) / len(rows) for d in dims}
    mean_b = {d: sum((r.scores_b or {})[d] for r in rows) / len(rows) for d in dims}
    return mean_a, mean_b


def pair_record(rows: Sequence[Judgment], split_config: SplitConfig) -> PreferencePair | None:
    """One dataset record from the judged orders of one pair; ``None`` on a tie in total."""
    first = rows[0]
    mean_a, mean_b = _mean_scores(rows)
    if mean_a["total"] == mean_b["total"]:
        return None
    a_wins = mean_a["total"] > mean_b["total"]
    w, l = ("a", "b") if a_wins else ("b", "a")
    score_w, score_l = (mean_a, mean_b) if a_wins else (mean_b, mean_a)
    image = {
        "a": (first.image_a_id, first.image_a_path, first.ratio_a),
        "b": (first.image_b_id, first.image_b_path, first.ratio_b),
    }
    return PreferencePair(
        pair_id=first.pair_id, batch=first.batch, prompt_id=first.prompt_id, prompt=first.prompt,
        prompt_hash=first.prompt_hash, winner_id=image[w][0], loser_id=image[l][0],
        image_winner_path=image[w][1], image_loser_path=image[l][1], winner_ratio=image[w][2], loser_ratio=image[l][2],
        scores={d: DimScores(winner=round(score_w[d], 4), loser=round(score_l[d], 4)) for d in score_w},
        judge_model=first.judge_model, judge_prompt_version=first.judge_prompt_version,
        consistent=all(r.winner == first.winner for r in rows),
        split=split_for(first.prompt_hash, split_config.fractions, split_config.split_salt),
    )


def build_pair_dataset(judgments: Sequence[Judgment], split_config: SplitConfig = SplitConfig()) -> PairDataset:
    by_pair: dict[str, list[Judgment]] = defaultdict(list)
    for row in judgments:
        by_pair[row.pair_id].append(row)
    dataset = PairDataset(pairs=[])
    for rows in by_pair.values():
        judged = [r for r in rows if r.status == "judged"]
        if len(judged) < len(rows):
            dataset.skipped["failed"] += 1
            continue
        record = pair_record(judged, split_config)
        if record is None:
            dataset.skipped["tie"] += 1
            continue
        dataset.pairs.append(record)
    dataset.pairs.sort(key=lambda p: (p.batch, p.prompt_id, p.pair_id))
    return dataset


def write_pair_dataset(root: DataRoot, dataset: PairDataset) -> Path:
    return PREFERENCE_PAIRS.write(dataset.pairs, root.table("preference_pairs"))


# --- the asset checks' logic (pure functions over the written table) -------------------
def winners_beat_losers(frame: pl.DataFrame) -> list[str]:
    """Pair ids whose winner's total is not strictly above the loser's."""
    if frame.is_empty():
        return []
    total = pl.col("scores").struct.field("total")
    bad = frame.filter(total.struct.field("winner") <= total.struct.field("loser"))
    return bad["pair_id"].to_list()


def prompts_in_several_splits(frame: pl.DataFrame) -> list[str]:
    """Prompt hashes that appear in more than one split (must be empty)."""
    if frame.is_empty():
        return []
    leaked = frame.group_by("prompt_hash").agg(pl.col("split").n_unique().alias("splits")).filter(pl.col("splits") > 1)
    return leaked["prompt_hash"].to_list()


def missing_ratios(frame: pl.DataFrame) -> list[str]:
    """Aspect ratios that no pair image has (all five must be present)."""
    present = set(frame["winner_ratio"].to_list()) | set(frame["loser_ratio"].to_list()) if frame.height else set()
    return [r for r in RATIOS if r not in present]


SPLITS: tuple[str, ...] = ("train", "val", "test")
MIN_RATIO_SHARE = 0.5  # of an even share: below this a ratio is under-represented in a split


def ratio_balance(frame: pl.DataFrame) -> dict[str, dict[str, int]]:
    """Pairs per split and kind: ``{split: {"same_ratio <ratio>": n, ..., "cross_ratio": n}}``."""
    counts: dict[str, dict[str, int]] = {s: {} for s in SPLITS}
    if frame.is_empty():
        return counts
    for split, kind, ratio, n in (
        frame.group_by("split", "pair_kind", "winner_ratio").len().sort("split", "pair_kind", "winner_ratio").iter_rows()
    ):
        key = f"same_ratio {ratio}" if kind == "same_ratio" else "cross_ratio"
        counts.setdefault(split, {})[key] = counts.get(split, {}).get(key, 0) + n
    return counts


def ratio_balance_problems(frame: pl.DataFrame, min_share: float = MIN_RATIO_SHARE) -> list[str]:
    """What keeps the splits from being ratio-balanced (must be empty).

    Every split needs same-ratio pairs at every ratio the table uses, none of them below
    ``min_share`` of an even share of that split's same-ratio pairs, and cross-ratio pairs.
    """
    if frame.is_empty():
        return ["the table has no pairs"]
    ratios = sorted(set(frame["winner_ratio"].to_list()) | set(frame["loser_ratio"].to_list()), key=list(RATIOS).index)
    problems = []
    for split, counts in ratio_balance(frame).items():
        same = {r: counts.get(f"same_ratio {r}", 0) for r in ratios}
        even = sum(same.values()) / len(ratios)
        for ratio, n in same.items():
            if n == 0:
                problems.append(f"{split}: no same_ratio pairs at {ratio}")
            elif n < min_share * even:
                problems.append(f"{split}: {n} same_ratio pairs at {ratio}, under {min_share:.0%} of an even share ({even:.1f})")
        if not counts.get("cross_ratio"):
            problems.append(f"{split}: no cross_ratio pairs")
    return problems

