"""Prompt batches: three sources (grammar, LLM, file), one deduplicated ``PromptSpec`` list."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from aesthetic_platform.paths import DataRoot, check_key
from aesthetic_platform.prompts.files import PromptFileError, read_prompt_file
from aesthetic_platform.prompts.grammar import grammar_prompts
from aesthetic_platform.prompts.llm import LLMPromptError, LLMPromptSource, PromptLLMConfig
from aesthetic_platform.prompts.normalize import normalize_text, prompt_id_for, text_hash
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.schemas import LANGUAGES, PROMPTS, PromptSource, PromptSpec

__all__ = [
    "LLMPromptError",
    "LLMPromptSource",
    "PromptBatchConfig",
    "PromptLLMConfig",
    "PromptFileError",
    "PromptRecord",
    "build_prompt_batch",
    "dedupe",
    "load_prompts",
    "normalize_text",
    "prompt_id_for",
    "text_hash",
    "write_prompts",
]


class PromptBatchConfig(BaseModel):
    """How one ``prompt_batch`` partition gets its prompts (the launchpad shows these fields)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: PromptSource = Field(
        default="grammar", description="'grammar': built-in offline grammar; 'llm': the prompt_llm endpoint; 'file': a CSV/JSON file."
    )
    count: int = Field(default=8, ge=1, le=10_000, description="Prompts per batch (grammar and llm sources).")
    languages: list[str] = Field(default=["zh", "en"], min_length=1, description="Languages in rotation: 'zh', 'en'.")
    file_path: str = Field(default="", description="CSV or JSON prompt file (source 'file').")
    theme: str = Field(default="", description="Optional theme passed to the LLM.")

    @field_validator("languages")
    @classmethod
    def _known_languages(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LANGUAGES))
        if unknown:
            raise ValueError(f"unknown language(s) {unknown}; known: {list(LANGUAGES)}")
        return value


def dedupe(specs: Iterable[PromptSpec]) -> list[PromptSpec]:
    """Keep the first prompt of each normalized-text hash, in input order."""
    seen: set[str] = set()
    unique: list[PromptSpec] = []
    for spec in specs:
        if spec.text_hash not in seen:
            seen.add(spec.text_hash)
            unique.append(spec)
    return unique


def _grammar_records(batch: str, config: PromptBatchConfig) -> list[PromptRecord]:
    return [
        PromptRecord(
            text=p.text, language=p.language, category=p.category, subject=p.subject, style=p.style,
            palette=list(p.palette), layout=p.layout, slogan=p.slogan,
        )
        for p in grammar_prompts(batch, config.count, tuple(config.languages))
    ]


def build_prompt_batch(batch: str, config: PromptBatchConfig, llm: LLMPromptSource | None = None) -> list[PromptSpec]:
    """The deduplicated prompts of one ``prompt_batch`` partition (``llm`` serves the 'llm' source)."""
    check_key("batch", batch)
    source: PromptSource = config.source
    if source == "grammar":
        records = _grammar_records(batch, config)
    elif source == "file":
        if not config.file_path:
            raise ValueError("prompt source 'file' needs file_path (a .csv or .json file)")
        records = read_prompt_file(Path(config.file_path))
    elif source == "llm":
        if llm is None:
            raise ValueError("prompt source 'llm' needs an LLM endpoint (model, base_url, api key)")
        records = llm.generate(config.count, tuple(config.languages), config.theme)
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown prompt source {source!r}")
    return dedupe(record.to_spec(batch, source) for record in records)


def write_prompts(root: DataRoot, batch: str, specs: list[PromptSpec]) -> Path:
    return PROMPTS.write(specs, root.table("prompts", batch))


def load_prompts(root: DataRoot, batch: str) -> list[PromptSpec]:
    return PROMPTS.rows(PROMPTS.read(root.table("prompts", batch)))
