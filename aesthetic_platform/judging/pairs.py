"""Which pairs to judge, how the two orders of a pair combine, and the split by prompt.

Pairs are formed only among one prompt's candidates (the student learns which of two
images is better *for the same prompt*), and only where one thing varies: two seeds
at one ratio (``same_ratio``: pick the best of K at one size) or one seed at two ratios
(``cross_ratio``: which format suits this design). Two different seeds at two different
ratios are never paired, so a ratio can never stand in for a candidate. A pair's images are kept in canonical
order — sorted image ids — and its id is derived from them, so a pair keeps its id
however often it is planned. The split is a pure function of the prompt's
normalized-text hash: the same prompt lands in the same split in every batch and
every run, so no prompt can ever appear in two splits.
"""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from aesthetic_platform.schemas import CandidateImage, PairKind, PromptSpec, Split, pair_kind_of
from aesthetic_platform.splits import split_position


@dataclass(frozen=True)
class CandidatePair:
    prompt: PromptSpec
    a: CandidateImage
    b: CandidateImage

    @property
    def pair_id(self) -> str:
        return pair_id_for(self.prompt.prompt_id, self.a.image_id, self.b.image_id)

    @property
    def kind(self) -> PairKind:
        return pair_kind_of(self.a.ratio, self.b.ratio)


def pair_id_for(prompt_id: str, image_a_id: str, image_b_id: str) -> str:
    first, second = sorted((image_a_id, image_b_id))
    return "q" + hashlib.sha256(f"pair:{prompt_id}:{first}:{second}".encode()).hexdigest()[:15]


def designed_pairs(images: Sequence[CandidateImage]) -> list[tuple[CandidateImage, CandidateImage]]:
    """One prompt's comparable pairs, in canonical order: same ratio (any seeds), or same seed (any two ratios).
    Byte-identical images (two ratios that round to one size at a small pixel budget) are never paired."""
    ordered = sorted(images, key=lambda c: c.image_id)
    return [
        (a, b) for a, b in itertools.combinations(ordered, 2) if (a.ratio == b.ratio or a.seed == b.seed) and a.sha256 != b.sha256
    ]


def plan_pairs(
    prompts: Sequence[PromptSpec], candidates: Sequence[CandidateImage], max_pairs_per_prompt: int = 0
) -> list[CandidatePair]:
    """Every designed pair of each prompt (:func:`designed_pairs`), or a deterministic sample of ``max_pairs_per_prompt``."""
    if max_pairs_per_prompt < 0:
        raise ValueError(f"max_pairs_per_prompt must be >= 0 (0 means all pairs), got {max_pairs_per_prompt}")
    by_prompt: dict[str, list[CandidateImage]] = {}
    for image in candidates:
        by_prompt.setdefault(image.prompt_id, []).append(image)
    pairs: list[CandidatePair] = []
    for prompt in prompts:
        combos = designed_pairs(by_prompt.get(prompt.prompt_id, []))
        if 0 < max_pairs_per_prompt < len(combos):
            combos = sorted(random.Random(f"pairs:{prompt.prompt_id}").sample(combos, max_pairs_per_prompt),
                            key=lambda ab: (ab[0].image_id, ab[1].image_id))
        pairs.extend(CandidatePair(prompt, a, b) for a, b in combos)
    return pairs


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must be three non-negative numbers (train, val, test) summing to 1, got {list(fractions)}")
    return (float(fractions[0]), float(fractions[1]), float(fractions[2]))


def split_for(prompt_hash: str, fractions: Sequence[float], salt: str) -> Split:
    """train/val/test from a salted hash of the prompt's normalized-text hash."""
    train, val, _ = check_fractions(fractions)
    position = split_position(prompt_hash, salt)
    if position < train:
        return "train"
    return "val" if position < train + val else "test"
