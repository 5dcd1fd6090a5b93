"""Which preference pairs a run trains, validates and tests on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.schemas import PREFERENCE_PAIRS, PreferencePair


@dataclass(frozen=True)
class PairSplits:
    train: list[PreferencePair]
    val: list[PreferencePair]
    test: list[PreferencePair]


def load_pair_splits(path: str | Path) -> PairSplits:
    """Train/val keep only position-consistent verdicts; test keeps them too, so accuracy is measured
    against orderings the judge itself stands behind."""
    rows = [pair for pair in PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(path)) if pair.consistent]
    return PairSplits(
        train=[p for p in rows if p.split == "train"],
        val=[p for p in rows if p.split == "val"],
        test=[p for p in rows if p.split == "test"],
    )
