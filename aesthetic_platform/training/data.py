"""Which preference pairs a run trains, validates and tests on, and the frozen evaluation set.

The test split moves whenever ``preference_pairs`` is re-split (other fractions, another
salt, new batches). Champion comparisons therefore run on an *evaluation set* frozen
the first time a model is evaluated: a copy of those test pairs under
``tables/eval_set.parquet`` with a content digest. Its prompts are held out of training
for good, whatever later splits say, so no candidate ever trains on what it is judged by.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import PREFERENCE_PAIRS, PreferencePair

EVAL_SET_TABLE = "eval_set"


@dataclass(frozen=True)
class PairSplits:
    train: list[PreferencePair]
    val: list[PreferencePair]
    test: list[PreferencePair]


def load_pair_splits(path: str | Path, held_out_prompts: Collection[str] = (), root: DataRoot | None = None) -> PairSplits:
    """Train/val keep only position-consistent verdicts; test keeps them too, so accuracy is measured
    against orderings the judge itself stands behind. Pairs of ``held_out_prompts`` never train.
    With ``root``, image paths are read against it (a moved or copied data root still works)."""
    rows = [pair for pair in PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(path), root) if pair.consistent]
    held = set(held_out_prompts)
    return PairSplits(
        train=[p for p in rows if p.split == "train" and p.prompt_hash not in held],
        val=[p for p in rows if p.split == "val" and p.prompt_hash not in held],
        test=[p for p in rows if p.split == "test"],
    )


@dataclass(frozen=True)
class EvalSet:
    pairs: list[PreferencePair]
    digest: str
    path: Path

    @property
    def prompt_hashes(self) -> set[str]:
        return {p.prompt_hash for p in self.pairs}


def eval_set_digest(pairs: Sequence[PreferencePair]) -> str:
    """Content digest: the same pairs with the same teacher scores give the same digest."""
    rows = sorted(
        (p.pair_id, p.winner_id, p.loser_id, {d: [s.winner, s.loser] for d, s in sorted(p.scores.items())}) for p in pairs
    )
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def load_eval_set(root: DataRoot) -> EvalSet | None:
    path = root.table(EVAL_SET_TABLE)
    if not path.exists():
        return None
    pairs = PREFERENCE_PAIRS.rows(PREFERENCE_PAIRS.read(path), root)
    return EvalSet(pairs, eval_set_digest(pairs), path)


def freeze_eval_set(root: DataRoot, test_pairs: Sequence[PreferencePair]) -> EvalSet:
    """Write ``test_pairs`` as the evaluation set (replacing any earlier one)."""
    if not test_pairs:
        raise ValueError("the preference_pairs test split is empty: judge more batches before evaluating")
    path = PREFERENCE_PAIRS.write(list(test_pairs), root.table(EVAL_SET_TABLE))
    return EvalSet(list(test_pairs), eval_set_digest(test_pairs), path)


def held_out_prompts(root: DataRoot) -> set[str]:
    """Prompts of the frozen evaluation set (empty before the first evaluation)."""
    eval_set = load_eval_set(root)
    return eval_set.prompt_hashes if eval_set else set()
