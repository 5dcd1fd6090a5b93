"""The judge's reply: a pydantic schema per dimension list, and a tolerant parser.

Servers that honour JSON mode return a bare object; others wrap it in a Markdown
fence or in prose. The parser accepts any of those, then validates strictly: every
configured dimension for both images, numbers (not strings or booleans) inside the
scale, a winner that agrees with the totals. Anything else raises ``ReplyError``
with a message short enough to send back to the model in the one repair request.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from aesthetic_platform.judging.prompt import ScoreScale, check_dimensions
from aesthetic_platform.llm import replies as llm_replies

Position = Literal["A", "B"]


class ReplyError(ValueError):
    """The judge's reply cannot be used (not JSON, wrong shape, out of range, refusal)."""


class JudgeReply(BaseModel):
    """A validated verdict on one presented pair (A shown first)."""

    model_config = ConfigDict(frozen=True)
    scores: dict[Position, dict[str, float]]
    winner: Position
    reason: str = ""


class _ReplyBase(BaseModel):
    model_config = ConfigDict(extra="ignore")
    winner: Position
    reason: str = Field(default="", max_length=2000)
    if TYPE_CHECKING:  # added by reply_model for the configured dimensions; declared here for the type checker only
        scores: BaseModel

    @field_validator("winner", mode="before")
    @classmethod
    def _position(cls, value: object) -> object:
        """Accept 'a', 'Image A', ' B ' — the letter is what matters."""
        if isinstance(value, str):
            cleaned = value.strip().upper().removeprefix("IMAGE").strip()
            if cleaned in ("A", "B"):
                return cleaned
        return value


@cache
def reply_model(dimensions: tuple[str, ...], scale: ScoreScale) -> type[_ReplyBase]:
    """A strict pydantic model for one dimension list and scale (cached per config)."""
    check_dimensions(dimensions)
    score = (float, Field(ge=scale.low, le=scale.high, strict=True))
    image_scores = create_model(  # type: ignore[call-overload]
        "ImageScores", __config__=ConfigDict(extra="forbid"), **{d: score for d in dimensions}
    )
    pair_scores = create_model("PairScores", __config__=ConfigDict(extra="forbid"), A=(image_scores, ...), B=(image_scores, ...))
    return create_model("JudgeReplySchema", __base__=_ReplyBase, scores=(pair_scores, ...))


def extract_json_object(text: str) -> dict:
    """The reply object in ``text``: bare, inside a Markdown fence, or inside prose.

    An object counts as the reply only if it has a "scores" or "winner" key, so a
    truncated reply is reported as broken JSON rather than mistaken for one of its
    inner objects.
    """
    try:
        return llm_replies.extract_json_object(text, required_keys=("scores", "winner"))
    except llm_replies.JSONReplyError as exc:
        raise ReplyError(str(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        got = "" if error["type"] == "missing" else f" (got {error.get('input')!r})"
        problems.append(f"{where}: {error['msg']}{got}")
    return "; ".join(problems)


def parse_reply(text: str, dimensions: tuple[str, ...], scale: ScoreScale) -> JudgeReply:
    """Validate a judge reply against the configured dimensions and scale."""
    data = extract_json_object(text)
    try:
        parsed = reply_model(tuple(dimensions), scale).model_validate(data)
    except ValidationError as exc:
        raise ReplyError(f"reply does not match the schema: {_describe(exc)}") from None
    positions: tuple[Position, ...] = ("A", "B")
    scores: dict[Position, dict[str, float]] = {pos: getattr(parsed.scores, pos).model_dump() for pos in positions}
    total_a, total_b = scores["A"]["total"], scores["B"]["total"]
    if total_a != total_b and parsed.winner != ("A" if total_a > total_b else "B"):
        raise ReplyError(f"winner {parsed.winner!r} contradicts the totals (A {total_a:g}, B {total_b:g})")
    return JudgeReply(scores=scores, winner=parsed.winner, reason=parsed.reason.strip())
