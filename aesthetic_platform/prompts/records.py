"""Prompt records as users and LLMs write them, validated into ``PromptSpec`` rows."""

from __future__ import annotations

import unicodedata
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aesthetic_platform.prompts.normalize import detect_language, prompt_id_for, text_hash
from aesthetic_platform.prompts.vocabulary import COLOURS, LAYOUTS, parse_elements
from aesthetic_platform.schemas import PromptSource, PromptSpec

#: Longest prompt accepted anywhere (files, the LLM, scoring): longer text is refused, never cut.
MAX_PROMPT_CHARS = 2000


class PromptError(ValueError):
    """A prompt refused before use (not text, empty, over a limit); the message names its index and the problem."""

    def __init__(self, index: int, problem: str) -> None:
        self.index, self.problem = index, problem
        super().__init__(f"prompt {index}: {problem}")

_COLOUR_WORDS = {w.lower(): key for key, (_, en, zh) in COLOURS.items() for w in (key, *en, *zh)}
_LAYOUT_WORDS = {w.lower(): key for key, (en, zh, extra) in LAYOUTS.items() for w in (key, en, zh, *extra)}


class PromptRecord(BaseModel):
    """One prompt from a CSV/JSON file or an LLM reply; only ``text`` is required."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    language: str | None = None
    category: str = ""
    subject: str = ""
    style: str = ""
    palette: list[str] = Field(default_factory=list)
    layout: str = ""
    slogan: str = ""

    @field_validator("text")
    @classmethod
    def _no_control_characters(cls, value: str) -> str:
        bad = next((c for c in value if unicodedata.category(c) == "Cc" and c not in "\t\n\r"), None)
        if bad is not None:
            raise ValueError(f"contains the control character U+{ord(bad):04X}")
        return value

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if value not in ("zh", "en"):
            raise ValueError(f"must be 'zh' or 'en', got {value!r}")
        return value

    @field_validator("palette", mode="before")
    @classmethod
    def _split_palette(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part for part in (p.strip() for p in value.replace(";", "|").replace(",", "|").split("|")) if part]
        return value

    @field_validator("palette")
    @classmethod
    def _canonical_colours(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c.lower() not in _COLOUR_WORDS]
        if unknown:
            raise ValueError(f"unknown colour(s) {unknown}; known: {sorted(COLOURS)}")
        return [_COLOUR_WORDS[c.lower()] for c in value]

    @field_validator("layout")
    @classmethod
    def _canonical_layout(cls, value: str) -> str:
        if not value:
            return ""
        if value.lower() not in _LAYOUT_WORDS:
            raise ValueError(f"unknown layout {value!r}; known: {sorted(LAYOUTS)}")
        return _LAYOUT_WORDS[value.lower()]

    def to_spec(self, batch: str, source: PromptSource) -> PromptSpec:
        """Fill unstated elements from the text itself, so every source carries them."""
        found = parse_elements(self.text)
        return PromptSpec(
            prompt_id=prompt_id_for(self.text),
            batch=batch,
            text=self.text,
            text_hash=text_hash(self.text),
            language=self.language or detect_language(self.text),  # type: ignore[arg-type]
            category=self.category,
            subject=self.subject or found.subject,
            style=self.style,
            palette=self.palette or list(found.palette),
            layout=self.layout or found.layout,
            slogan=self.slogan,
            source=source,
        )


ACCEPTED_FIELDS = tuple(PromptRecord.model_fields)
