"""What every image generator provides: one PIL image per (prompt, seed, size) request."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from PIL import Image


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    seed: int
    width: int
    height: int


class ImageGenerator(Protocol):
    """A text-to-image backend. Same request -> same image, one seed per image.

    A generator whose seed fixes the design at every size (the poster renderer) sets a
    class attribute ``seed_families = True``; candidate planning then renders each seed at
    all of a prompt's ratios. Without it (a diffusion model lays out each size anew)
    every (ratio, seed) gets its own seed."""

    @property
    def name(self) -> str:
        """Generator kind and model, recorded in every manifest row."""
        ...

    @property
    def params(self) -> dict[str, Any]:
        """Every parameter that changes pixels (steps, guidance, scheduler, ...)."""
        ...

    def generate(self, requests: list[GenerationRequest]) -> list[Image.Image]:
        ...


def params_json(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, default=str)
