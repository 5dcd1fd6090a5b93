"""Image sizes per aspect ratio from a pixel budget, with sides a multiple of 16.

Diffusion VAEs downsample by 8 and FLUX packs 2x2 latents, so 16 is the smallest
side multiple every supported generator accepts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from typing import Literal

from aesthetic_platform.schemas import RATIOS

SIDE_MULTIPLE = 16
RatioMode = Literal["all", "fixed", "random"]


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


def assign_ratios(count: int, mode: RatioMode, ratios: Sequence[str], rng: random.Random) -> list[str]:
    """Ratios for ``count`` candidates.

    ``all`` cycles through all five ratios (so any batch of five or more candidates
    covers every ratio); ``fixed`` cycles through the given list; ``random`` draws from it.
    """
    if mode == "all":
        ratios = list(RATIOS)
    unknown = [r for r in ratios if r not in RATIOS]
    if unknown or not ratios:
        raise ValueError(f"ratios must be a non-empty subset of {list(RATIOS)}, got {list(ratios)}")
    if mode in ("all", "fixed"):
        return [ratios[i % len(ratios)] for i in range(count)]
    if mode == "random":
        return [rng.choice(list(ratios)) for _ in range(count)]
    raise ValueError(f"unknown ratio mode {mode!r}; use 'all', 'fixed' or 'random'")
