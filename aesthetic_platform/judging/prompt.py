"""The judge prompt: versioned template files inside the package, rendered per config.

The dimension list and the score scale are configuration, so the rendered prompt —
and therefore the cache namespace — follows them: ``JudgePrompt.version`` is the
template version plus a hash of everything rendered into it, so editing a template,
the dimensions or the scale can never reuse a verdict made under another prompt.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from string import Template
from typing import Any

from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

TEMPLATE_VERSION = "v1"
IMAGE_MARKERS = ("[[image A]]", "[[image B]]")
PROMPT_OPEN, PROMPT_CLOSE = "<generation_prompt>", "</generation_prompt>"
_DIMENSION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
VERSION_HASH_CHARS = 10


@dataclass(frozen=True)
class ScoreScale:
    low: float = 1.0
    high: float = 10.0

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"score scale needs low < high, got {self.low}..{self.high}")


def check_dimensions(dimensions: tuple[str, ...]) -> tuple[str, ...]:
    """Dimensions become JSON keys and Parquet struct fields: short snake_case, unique, with 'total'."""
    bad = [d for d in dimensions if not _DIMENSION_NAME.match(d)]
    if bad:
        raise ValueError(f"invalid dimension name(s) {bad}: use snake_case, starting with a letter, at most 40 chars")
    if len(set(dimensions)) != len(dimensions):
        raise ValueError(f"duplicate dimensions in {list(dimensions)}")
    if "total" not in dimensions:
        raise ValueError(f"dimensions must include 'total' (the winner is decided on it), got {list(dimensions)}")
    return tuple(dimensions)


@cache
def _template(name: str) -> str:
    return resources.files("aesthetic_platform.judging").joinpath("templates", name).read_text(encoding="utf-8")


@cache
def dimension_descriptions() -> dict[str, str]:
    return json.loads(_template("dimensions.json"))


def describe_dimension(name: str) -> str:
    """The packaged description of a known dimension; a generic one for a custom dimension."""
    words = name.replace("_", " ")
    return dimension_descriptions().get(name) or f"the {words} of the image, as an expert art director judges it"


def version_hash(*parts: Any) -> str:
    """Short stable hash of everything that changes what a judge returns."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:VERSION_HASH_CHARS]


def delimit_prompt(text: str) -> str:
    """The generation prompt is data: strip anything that could close its delimiters."""
    return text.replace(PROMPT_CLOSE, "").replace(PROMPT_OPEN, "").strip()


def extract_prompt(user_text: str) -> str:
    """Read the generation prompt back out of a rendered user message (used by servers)."""
    match = re.search(re.escape(PROMPT_OPEN) + r"\n(.*?)\n" + re.escape(PROMPT_CLOSE), user_text, re.S)
    if not match:
        raise ValueError(f"no {PROMPT_OPEN} block in the message")
    return match.group(1)


@dataclass(frozen=True)
class JudgePrompt:
    """The rendered judge prompt for one dimension list and score scale."""

    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    scale: ScoreScale = field(default_factory=ScoreScale)
    template_version: str = TEMPLATE_VERSION

    def __post_init__(self) -> None:
        check_dimensions(self.dimensions)

    def json_example(self) -> str:
        mid = round((self.scale.low + self.scale.high) / 2, 1)
        scores = {d: mid for d in self.dimensions}
        example = {"scores": {"A": scores, "B": scores}, "winner": "A", "reason": "..."}
        return json.dumps(example, ensure_ascii=False)

    def _fill(self, name: str, **values: str) -> str:
        common = {
            "scale_min": f"{self.scale.low:g}",
            "scale_max": f"{self.scale.high:g}",
            "json_example": self.json_example(),
        }
        return Template(_template(f"{self.template_version}/{name}")).substitute(common, **values)

    def system(self) -> str:
        lines = [f"- {d}: {describe_dimension(d)}" for d in self.dimensions]
        return self._fill("system.txt", dimension_list="\n".join(lines))

    def user_parts(self, prompt: str) -> list[str]:
        """The user message as three text chunks: before image A, between A and B, after B."""
        text = self._fill("user.txt", prompt=delimit_prompt(prompt))
        before, rest = text.split(IMAGE_MARKERS[0], 1)
        between, after = rest.split(IMAGE_MARKERS[1], 1)
        return [before.rstrip("\n"), between.strip("\n"), after.lstrip("\n")]

    def repair(self, error: str) -> str:
        return self._fill("repair.txt", error=error)

    @property
    def version(self) -> str:
        rendered = (self.system(), self.user_parts("$prompt"), self.repair("$error"))
        return f"judge-{self.template_version}.{version_hash(rendered)}"
