"""What every judge takes and returns.

A judge sees two images in a presentation order — A shown first, B second — plus the
generation prompt, and returns a ``Verdict`` in those same positions. Mapping
positions back to candidate ids, caching and position-swap bookkeeping happen
outside the judge (``run.py``), so every judge gets them for free.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ErrorKind = Literal["", "transport", "reply"]


@dataclass(frozen=True)
class ImageRef:
    path: str
    sha256: str


@dataclass(frozen=True)
class JudgeRequest:
    """One judge call: ``first`` is shown as image A, ``second`` as image B."""

    prompt: str
    first: ImageRef
    second: ImageRef
    label: str = field(default="", compare=False)  # for logs and error messages, e.g. the pair id and order


@dataclass(frozen=True)
class Verdict:
    """The outcome of one judge call, in presentation positions (A = shown first).

    A failed call keeps its reason and carries no scores: a pair is never given a
    made-up score.
    """

    ok: bool
    scores_a: dict[str, float] | None = None
    scores_b: dict[str, float] | None = None
    winner: Literal["A", "B", ""] = ""
    reason: str = ""
    raw: str = ""
    error: str = ""
    error_kind: ErrorKind = ""
    repaired: bool = False
    attempts: int = 0
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Verdict:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def failed(cls, error: str, kind: ErrorKind, **usage: Any) -> Verdict:
        return cls(ok=False, error=error, error_kind=kind, **usage)


OnVerdict = Callable[[int, Verdict], None]


class Judge(Protocol):
    """A pairwise judge. ``model``, ``prompt_version`` and ``fingerprint`` are its provenance and cache namespace."""

    @property
    def model(self) -> str: ...

    @property
    def fingerprint(self) -> str:
        """A hash of the settings beyond model and prompt that change its replies (endpoint, image size, sampling)."""
        ...

    @property
    def prompt_version(self) -> str: ...

    @property
    def dimensions(self) -> tuple[str, ...]: ...

    def judge_all(self, requests: Sequence[JudgeRequest], on_verdict: OnVerdict) -> None:
        """Judge every request; call ``on_verdict(index, verdict)`` as soon as each one is done."""
        ...
