"""Best-of-N: does the student pick the candidate the judge would pick?

The main use of the scorer is choosing the best of N seeds rendered at one size. A
group is the same-ratio candidates of one (prompt, ratio) whose pairs were all judged
(a full round robin). In it the judge's top pick is the candidate that beats every
other one on the dimension by more than the tie threshold (its Condorcet winner; a
group without one is left out for that dimension), and the student's top pick is the
candidate with the highest logit. Random choice hits with probability 1/N, so the
baseline is the mean of 1/N over the groups; CIs come from a bootstrap over prompts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from aesthetic_platform.evaluation.stats import Accuracy, bootstrap_accuracy
from aesthetic_platform.model.loss import decisive
from aesthetic_platform.stats import BOOTSTRAP_SAMPLES, CONFIDENCE, cluster_bootstrap


@dataclass(frozen=True)
class BestOfN:
    """Hit rate of the student's top pick, the random-choice rate on the same groups, and the lift's CI."""

    hit: Accuracy  # n = groups scored
    chance: float  # mean 1/N over those groups
    lift_ci_low: float  # CI of (hit - 1/N), bootstrap over prompts
    lift_ci_high: float
    mean_n: float
    skipped: int  # complete groups without a strict judge top pick on this dimension

    @property
    def beats_chance(self) -> bool:
        return self.hit.n > 0 and self.lift_ci_low > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.hit.as_dict(), "chance": self.chance, "lift_ci_low": self.lift_ci_low, "lift_ci_high": self.lift_ci_high,
            "mean_n": self.mean_n, "skipped": self.skipped, "beats_chance": self.beats_chance,
        }


@dataclass(frozen=True)
class Group:
    prompt_hash: str
    images: tuple[str, ...]
    pairs: tuple[int, ...]  # indices into the pair list


def same_ratio_groups(pairs: Sequence) -> tuple[list[Group], int]:
    """(complete groups of >= 2 candidates, incomplete groups left out) from the same-ratio pairs."""
    members: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, pair in enumerate(pairs):
        if pair.pair_kind == "same_ratio":
            members[(pair.prompt_id, pair.winner_ratio)].append(index)
    groups, incomplete = [], 0
    for indices in members.values():
        images = tuple(sorted({i for k in indices for i in (pairs[k].winner_id, pairs[k].loser_id)}))
        n = len(images)
        if len({frozenset((pairs[k].winner_id, pairs[k].loser_id)) for k in indices}) != n * (n - 1) // 2:
            incomplete += 1
            continue
        groups.append(Group(pairs[indices[0]].prompt_hash, images, tuple(indices)))
    return groups, incomplete


def best_of_n(
    pairs: Sequence, winner_logits: np.ndarray, loser_logits: np.ndarray, dimensions: Sequence[str], tie_threshold: float,
    samples: int = BOOTSTRAP_SAMPLES, confidence: float = CONFIDENCE,
) -> dict[str, BestOfN]:
    """Per dimension, how often the student's top pick of a same-ratio group is the judge's.

    ``winner_logits``/``loser_logits`` are [pairs, dimensions] student logits in ``dimensions``
    order (as :func:`aesthetic_platform.model.predict.pair_logits` returns them)."""
    groups, _ = same_ratio_groups(pairs)
    logit: dict[str, np.ndarray] = {}
    for index, pair in enumerate(pairs):
        logit.setdefault(pair.winner_id, winner_logits[index])
        logit.setdefault(pair.loser_id, loser_logits[index])
    results = {}
    for column, dim in enumerate(dimensions):
        hits, chance, clusters, sizes, skipped = [], [], [], [], 0
        for group in groups:
            top = _judge_top(pairs, group, dim, tie_threshold)
            if top is None:
                skipped += 1
                continue
            student = max(group.images, key=lambda image: (logit[image][column], image))
            hits.append(float(student == top))
            chance.append(1.0 / len(group.images))
            clusters.append(group.prompt_hash)
            sizes.append(len(group.images))
        hit_array, chance_array = np.array(hits), np.array(chance)
        hit = bootstrap_accuracy(hit_array, np.array(clusters), samples, confidence)
        lift = hit_array - chance_array

        def mean_lift(w: np.ndarray, lift: np.ndarray = lift) -> float:
            return float(w @ lift / w.sum())

        low, high = cluster_bootstrap(mean_lift, np.array(clusters), samples, confidence)
        results[dim] = BestOfN(
            hit, float(chance_array.mean()) if chance else float("nan"), low, high,
            float(np.mean(sizes)) if sizes else float("nan"), skipped,
        )
    return results


def _judge_top(pairs: Sequence, group: Group, dim: str, tie_threshold: float) -> str | None:
    """The candidate that beats every other one of the group on ``dim`` by more than the tie threshold."""
    wins: dict[str, int] = dict.fromkeys(group.images, 0)
    for index in group.pairs:
        pair = pairs[index]
        gap = pair.scores[dim].winner - pair.scores[dim].loser
        if decisive(gap, tie_threshold):
            wins[pair.winner_id if gap > 0 else pair.loser_id] += 1
    top = [image for image, count in wins.items() if count == len(group.images) - 1]
    return top[0] if len(top) == 1 else None

