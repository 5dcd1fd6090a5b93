"""Row models shared by every layer: one pydantic model per table.

Writers build frames through ``TABLE.frame(rows)`` and readers load through
``TABLE.read(path)``, so a column can only change here.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.tables import Table

Language = Literal["zh", "en"]
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

    image_id: str = Field(description="sha256-derived id of (batch, prompt, seed, size, generator)")
    prompt_id: str
    batch: str
    seed: int = Field(ge=0, lt=2**32)
    ratio: RatioLabel
    width: int = Field(gt=0, multiple_of=16)
    height: int = Field(gt=0, multiple_of=16)
    generator: str = Field(description="generator kind and model, e.g. poster-renderer/v1")
    steps: int | None = None
    guidance: float | None = None
    scheduler: str | None = None
    params_json: str = Field(description="every generation parameter, as sorted JSON")
    path: str = Field(description="absolute path of the PNG")
    sha256: str
    created_at: dt.datetime


PROMPTS = Table("prompts", PromptSpec)
CANDIDATE_IMAGES = Table("candidate_images", CandidateImage)
