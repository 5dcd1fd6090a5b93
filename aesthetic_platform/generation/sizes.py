"""Image sizes per aspect ratio from a pixel budget, with sides a multiple of 16.

Diffusion VAEs downsample by 8 and FLUX packs 2x2 latents, so 16 is the smallest
side multiple every supported generator accepts.
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Sequence
from typing import Literal

from aesthetic_platform.schemas import RATIOS

SIDE_MULTIPLE = 16
RatioMode = Literal["balanced", "random"]


def size_for_ratio(ratio: str, pixel_budget: int, multiple: int = SIDE_MULTIPLE) -> tuple[int, int]:
    """(width, height) closest to ``pixel_budget`` pixels at ``ratio``, both multiples of ``multiple``."""
    if ratio not in RATIOS:
        raise ValueError(f"unknown aspect ratio {ratio!r}; choose from {list(RATIOS)}")
    if pixel_budget < multiple * multiple:
        raise ValueError(f"pixel budget {pixel_budget} is below one {multiple}x{multiple} tile")
    rw, rh = RATIOS[ratio]
    width = math.sqrt(pixel_budget * rw / rh)
    height = width * rh / rw
    return (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))


def ratio_cycle(ratios: Sequence[str], per_prompt: int) -> list[tuple[str, ...]]:
    """Every ``per_prompt``-subset of ``ratios`` once, ordered so each run of subsets uses the ratios evenly.

    Greedy: the next subset is the one whose ratios have been used least so far, so for
    two of five ratios every five consecutive subsets use each ratio exactly twice.
    """
    _check_ratios(ratios)
    ratios = sorted(dict.fromkeys(ratios), key=list(RATIOS).index)
    if not 1 <= per_prompt <= len(ratios):
        raise ValueError(f"ratios_per_prompt must be between 1 and {len(ratios)} (the ratios given), got {per_prompt}")
    remaining = list(itertools.combinations(ratios, per_prompt))
    used: Counter[str] = Counter()
    cycle: list[tuple[str, ...]] = []
    while remaining:
        subset = min(remaining, key=lambda s: (sum(used[r] for r in s), max(used[r] for r in s)))
        remaining.remove(subset)
        used.update(subset)
        cycle.append(subset)
    return cycle


def assign_ratios(
    positions: Sequence[float], mode: RatioMode, ratios: Sequence[str], per_prompt: int, rng: random.Random
) -> list[tuple[str, ...]]:
    """The ratios of each prompt, given each prompt's split position (see :mod:`aesthetic_platform.splits`).

    ``balanced`` walks :func:`ratio_cycle` over the prompts in split-position order from a
    random start, so any interval of positions — each split is one — gets every ratio
    equally often, to within one subset per batch; ``random`` draws ``per_prompt``
    distinct ratios for each prompt independently.
    """
    if mode == "balanced":
        cycle = ratio_cycle(ratios, per_prompt)
        start = rng.randrange(len(cycle))
        order = sorted(range(len(positions)), key=lambda i: positions[i])
        assigned: list[tuple[str, ...]] = [()] * len(positions)
        for rank, index in enumerate(order):
            assigned[index] = cycle[(start + rank) % len(cycle)]
        return assigned
    if mode == "random":
        cycle = ratio_cycle(ratios, per_prompt)  # validates
        pool = sorted({r for subset in cycle for r in subset}, key=list(RATIOS).index)
        return [tuple(sorted(rng.sample(pool, per_prompt), key=list(RATIOS).index)) for _ in positions]
    raise ValueError(f"unknown ratio mode {mode!r}; use 'balanced' or 'random'")


def _check_ratios(ratios: Sequence[str]) -> None:
    unknown = [r for r in ratios if r not in RATIOS]
    if unknown or not ratios:
        raise ValueError(f"ratios must be a non-empty subset of {list(RATIOS)}, got {list(ratios)}")
