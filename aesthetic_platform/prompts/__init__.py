"""Prompt batches: three sources (grammar, LLM, file), one deduplicated ``PromptSpec`` list."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aesthetic_platform.paths import DataRoot, check_key
from aesthetic_platform.prompts.files import PromptFileError, read_prompt_file
from aesthetic_platform.prompts.grammar import grammar_prompts
from aesthetic_platform.prompts.llm import LLMPromptError, LLMPromptSource
from aesthetic_platform.prompts.normalize import normalize_text, prompt_id_for, text_hash
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.schemas import PROMPTS, PromptSource, PromptSpec

__all__ = [
    "LLMPromptError",
    "LLMPromptSource",
    "PromptBatchConfig",
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


@dataclass(frozen=True)
class PromptBatchConfig:
    source: Literal["grammar", "llm", "file"] = "grammar"
    count: int = 8
    languages: tuple[str, ...] = ("zh", "en")
    file_path: str | None = None
    theme: str = ""
    llm: LLMPromptSource | None = field(default=None)


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
        for p in grammar_prompts(batch, config.count, config.languages)
    ]


def build_prompt_batch(batch: str, config: PromptBatchConfig) -> list[PromptSpec]:
    """The deduplicated prompts of one ``prompt_batch`` partition."""
    check_key("batch", batch)
    source: PromptSource = config.source
    if source == "grammar":
        records = _grammar_records(batch, config)
    elif source == "file":
        if not config.file_path:
            raise ValueError("prompt source 'file' needs file_path (a .csv or .json file)")
        records = read_prompt_file(Path(config.file_path))
    elif source == "llm":
        if config.llm is None:
            raise ValueError("prompt source 'llm' needs an LLM endpoint (model, base_url, api key)")
        records = config.llm.generate(config.count, config.languages, config.theme)
    else:  # pragma: no cover - guarded by the Literal type
        raise ValueError(f"unknown prompt source {source!r}")
    return dedupe(record.to_spec(batch, source) for record in records)


def write_prompts(root: DataRoot, batch: str, specs: list[PromptSpec]) -> Path:
    return PROMPTS.write(specs, root.table("prompts", batch))


def load_prompts(root: DataRoot, batch: str) -> list[PromptSpec]:
    return PROMPTS.rows(PROMPTS.read(root.table("prompts", batch)))
