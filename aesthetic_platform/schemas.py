"""Row models shared by every layer: one pydantic model per table.

Writers build frames through ``TABLE.frame(rows)`` and readers load through
``TABLE.read(path)``, so a column can only change here.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.tables import Table

Language = Literal["zh", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
PromptSource = Literal["grammar", "llm", "file"]

#: The five aspect ratios of seed 000 §3 Phase 1.2, as (label, width:height).
RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "3:4": (3, 4),
    "9:16": (9, 16),
    "4:3": (4, 3),
    "16:9": (16, 9),
}
RatioLabel = Literal["1:1", "3:4", "9:16", "4:3", "16:9"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PromptSpec(_Row):
    """A key-visual / poster prompt with its objective elements (seed 000 §1 input)."""

    prompt_id: str = Field(description="'p' + first 15 hex of the normalized-text hash")
    batch: str = Field(description="prompt_batch partition key")
    text: str = Field(min_length=1, description="the prompt given to the image generator")
    text_hash: str = Field(description="sha256 of the normalized text; the dedup and split key")
    language: Language
    category: str = Field(default="", description="e.g. key_visual, poster, banner")
    subject: str = ""
    style: str = ""
    palette: list[str] = Field(default_factory=list, description="canonical colour names")
    layout: str = Field(default="", description="canonical layout word, e.g. centered, left, thirds")
    slogan: str = ""
    source: PromptSource


class CandidateImage(_Row):
    """One generated candidate: the manifest row that makes the PNG reproducible."""

    image_id: str = Field(description="sha256-derived id of (batch, prompt, seed, ratio, size, generator)")
    prompt_id: str
    batch: str
    seed: int = Field(ge=0, lt=2**32)
    ratio: RatioLabel
    width: int = Field(gt=0, multiple_of=16)
    height: int = Field(gt=0, multiple_of=16)
    seed_family: int = Field(
        default=0, ge=0, description="index of the seed within its prompt; one family = one seed rendered at each of the prompt's ratios"
    )
    split_position: float = Field(
        default=0.0, ge=0, lt=1, description="the prompt's split position: ratios rotate over prompts in this order (stratified by split)"
    )
    generator: str = Field(description="generator kind and model, e.g. poster-renderer/v1")
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    params_json: str = Field(description="every generation parameter, as sorted JSON")
    path: str = Field(description="path of the PNG (read against the data root: see DataRoot.resolve)")
    sha256: str
    created_at: dt.datetime


PROMPTS = Table("prompts", PromptSpec)
CANDIDATE_IMAGES = Table("candidate_images", CandidateImage, path_fields=("path",))


#: Default scoring dimensions (ARCHITECTURE §2); configuration, not code, decides the list.
DEFAULT_DIMENSIONS: tuple[str, ...] = ("total", "composition", "color", "style_fit", "prompt_alignment")
Split = Literal["train", "val", "test"]


class DimScores(BaseModel):
    """Teacher scores of one dimension for both images of a pair (the loser may win it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    winner: float
    loser: float


PairKind = Literal["same_ratio", "cross_ratio"]
PAIR_KINDS: tuple[str, ...] = get_args(PairKind)


def pair_kind_of(ratio_a: str, ratio_b: str) -> PairKind:
    """``same_ratio`` for two candidates of one size, ``cross_ratio`` for one seed at two ratios."""
    return "same_ratio" if ratio_a == ratio_b else "cross_ratio"


def ratio_pair_of(ratio_a: str, ratio_b: str) -> str:
    """The pair's two ratios in canonical (``RATIOS``) order, e.g. ``1:1|16:9``; ``4:3|4:3`` for a same-ratio pair."""
    order = list(RATIOS)
    first, second = sorted((ratio_a, ratio_b), key=lambda r: order.index(r) if r in order else len(order))
    return f"{first}|{second}"


class PreferencePair(_Row):
    """One training/eval pair, seed 000 §7: winner > loser on ``total``, per-dimension scores.

    ``pair_kind`` and ``ratio_pair`` follow from the two ratios; rows built without them get them filled in."""

    pair_id: str
    batch: str
    prompt_id: str
    prompt: str
    prompt_hash: str = Field(description="normalized-text hash; the split key")
    winner_id: str
    loser_id: str
    image_winner_path: str
    image_loser_path: str
    winner_ratio: RatioLabel
    loser_ratio: RatioLabel
    scores: dict[str, DimScores] = Field(description="{dim: {winner, loser}} for every configured dimension")
    judge_model: str
    judge_prompt_version: str
    consistent: bool = Field(description="False when the verdict flipped under position swap; kept out of training")
    split: Split
    pair_kind: PairKind = Field(default="same_ratio", description="same_ratio: two seeds at one size; cross_ratio: one seed at two ratios")
    ratio_pair: str = Field(default="", description="both ratios in canonical order, e.g. '1:1|16:9'")

    @model_validator(mode="before")
    @classmethod
    def _derive_kind(cls, data: Any) -> Any:
        if isinstance(data, dict) and "winner_ratio" in data and "loser_ratio" in data:
            derived = {
                "pair_kind": pair_kind_of(data["winner_ratio"], data["loser_ratio"]),
                "ratio_pair": ratio_pair_of(data["winner_ratio"], data["loser_ratio"]),
            }
            for key, value in derived.items():
                if data.get(key) not in (None, "", value):
                    raise ValueError(f"{key} {data[key]!r} contradicts the ratios {data['winner_ratio']} / {data['loser_ratio']}")
            data = {**data, **derived}
        return data


class HumanPreference(_Row):
    """A human pick (workbench golden > bad, or an import): the independent human test set."""

    pair_id: str
    prompt_id: str
    prompt: str
    prompt_hash: str
    winner_path: str
    loser_path: str
    winner_seed: int | None = None
    loser_seed: int | None = None
    winner_ratio: str = ""
    loser_ratio: str = ""
    dimension: str = Field(default="total", description="the dimension the human judged")
    annotator: str
    source: str = Field(default="workbench")
    created_at: dt.datetime


PREFERENCE_PAIRS = Table("preference_pairs", PreferencePair, path_fields=("image_winner_path", "image_loser_path"))
HUMAN_PREFERENCES = Table("human_preferences", HumanPreference, path_fields=("winner_path", "loser_path"))


JudgmentStatus = Literal["judged", "failed"]
PairOrder = Literal["ab", "ba"]


class Judgment(_Row):
    """One judge call on one candidate pair in one presentation order (seed 000 Phase 1.1).

    Image ``a`` and ``b`` are the pair in canonical order (sorted image ids); ``order``
    says which one the judge saw first. Scores and winner are always given for the
    canonical ``a``/``b``, so the two orders of a pair compare directly.
    """

    pair_id: str
    batch: str
    prompt_id: str
    prompt: str
    prompt_hash: str
    order: PairOrder
    image_a_id: str
    image_b_id: str
    image_a_path: str
    image_b_path: str
    image_a_sha256: str
    image_b_sha256: str
    ratio_a: RatioLabel
    ratio_b: RatioLabel
    status: JudgmentStatus
    error: str = Field(default="", description="why the pair failed (after retries and one repair request)")
    error_kind: Literal["", "transport", "reply"] = ""
    scores_a: dict[str, float] | None = Field(default=None, description="{dim: score} of image a; null when failed")
    scores_b: dict[str, float] | None = None
    winner: Literal["a", "b", ""] = Field(default="", description="canonical winner on total; '' when failed")
    reason: str = ""
    raw_response: str = ""
    repaired: bool = Field(default=False, description="the first reply was invalid and the repair request fixed it")
    consistent: bool | None = Field(default=None, description="both orders agree on the winner; null unless both were judged")
    judge_model: str
    judge_prompt_version: str
    from_cache: bool
    attempts: int
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    judged_at: dt.datetime


JUDGMENTS = Table("judgments", Judgment, path_fields=("image_a_path", "image_b_path"))


class ReferenceImage(_Row):
    """One crawled reference image, stored once per sha256, with its provenance."""

    image_id: str = Field(description="'r' + first 15 hex of the sha256")
    source: str = Field(description="crawl_source partition key")
    sha256: str
    path: str = Field(description="absolute path of the stored file (content-addressed)")
    url: str = Field(description="the image URL as discovered")
    final_url: str = Field(description="the URL that answered, after redirects")
    page_url: str = Field(default="", description="the detail page the image came from; '' for URL lists")
    title: str = ""
    tags: list[str] = Field(default_factory=list)
    author: str = ""
    licence: str = Field(default="", description="licence text of the page, e.g. 'CC BY 4.0'; '' when the page has none")
    licence_url: str = ""
    format: str = Field(description="decoded format: JPEG, PNG, WEBP or GIF")
    width: int = Field(gt=0)
    height: int = Field(gt=0)
    bytes: int = Field(gt=0)
    content_type: str
    etag: str = ""
    last_modified: str = ""
    headers_json: str = Field(description="the response headers that matter (type, length, caching, licence links), as sorted JSON")
    fetched_at: dt.datetime


REFERENCE_IMAGES = Table("reference_images", ReferenceImage, path_fields=("path",))


AuditStatus = Literal["passed", "flagged", "unaudited"]
AuditKind = Literal["prompt", "image"]
#: What judging does with an unaudited item (its auditor failed): leave it out, or judge it anyway.
UnauditedPolicy = Literal["skip", "include"]


class ContentAudit(_Row):
    """The content audit of one prompt or one candidate image of a ``prompt_batch``, before judging."""

    batch: str
    kind: AuditKind
    item_id: str = Field(description="prompt_id for prompts, image_id for images")
    prompt_id: str
    content_hash: str = Field(description="prompt text hash or image sha256: a re-run reuses audits of unchanged content")
    status: AuditStatus = Field(description="'unaudited': the auditor failed (see error); judging skips or includes it by policy")
    categories: list[str] = Field(default_factory=list, description="flagged categories, e.g. sexual, violence")
    reason: str = Field(default="", description="why it was flagged, in words")
    rule_hits: list[str] = Field(default_factory=list, description="'category:term' of every matched rule term")
    scores_json: str = Field(default="{}", description="moderation category scores, as sorted JSON")
    auditor: str = Field(description="what audited it: rules, moderation:<model>, image:<classifier>, none (no image model)")
    error: str = ""
    attempts: int = Field(default=0, ge=0, description="HTTP attempts of the moderation call (0: no call)")
    config_hash: str = Field(description="hash of the audit settings that produced the row")
    unaudited_policy: UnauditedPolicy = Field(default="skip", description="the policy judging applies to unaudited items of this audit")
    audited_at: dt.datetime


CONTENT_AUDIT = Table("content_audit", ContentAudit)


LabelStatus = Literal["single", "unanimous", "majority", "tie"]


class LabelConsensus(_Row):
    """One labelled item of one task at snapshot time: its annotators' effective labels and their consensus."""

    item: str = Field(description="sha256 of the item's content (the store's key)")
    task: str
    kind: str = Field(description="image or text")
    path: str | None = None
    text: str | None = None
    annotators: int = Field(ge=1)
    effective_json: str = Field(description="{annotator: latest label}, as sorted JSON")
    votes_json: str = Field(description="{label: annotators}, as sorted JSON")
    consensus: str | None = Field(default=None, description="the label of a strict majority; empty on a tie")
    agreement: float = Field(ge=0, le=1, description="share of annotators behind the most common label")
    status: LabelStatus
    snapshot_at: dt.datetime


class ReviewQueueItem(LabelConsensus):
    """A disputed item waiting for review; rank 1 is looked at first (ties, then lowest agreement)."""

    rank: int = Field(ge=1)


LABEL_SNAPSHOT = Table("label_snapshot", LabelConsensus, path_fields=("path",))
LABEL_REVIEW_QUEUE = Table("label_review_queue", ReviewQueueItem, path_fields=("path",))
