"""Built-in prompt grammar: the offline default source of key-visual / poster prompts.

Deterministic for a batch key: the random stream is seeded from the key's hash, so
re-materializing a partition reproduces the same prompts byte for byte.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from aesthetic_platform.prompts.vocabulary import CATEGORIES, LAYOUTS, PALETTES, SLOGANS, STYLES, SUBJECTS


@dataclass(frozen=True)
class GrammarPrompt:
    text: str
    language: str
    category: str
    subject: str
    style: str
    palette: tuple[str, ...]
    layout: str
    slogan: str


def _rng_for(batch_key: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(f"grammar:{batch_key}".encode()).digest()[:8], "big"))


def _english(category: str, subject: str, style: str, palette_en: str, layout: str, slogan: str) -> str:
    return (
        f"A {STYLES[style][0]} {CATEGORIES[category][0]} featuring {SUBJECTS[subject][0]}, "
        f"{palette_en} palette, {LAYOUTS[layout][0]}, headline text \"{slogan}\""
    )


def _chinese(category: str, subject: str, style: str, palette_zh: str, layout: str, slogan: str) -> str:
    return (
        f"一张{STYLES[style][1]}的{CATEGORIES[category][1]}，主体是{SUBJECTS[subject][1]}，"
        f"配色为{palette_zh}，{LAYOUTS[layout][1]}，标题文字“{slogan}”"
    )


def grammar_prompts(batch_key: str, count: int, languages: tuple[str, ...] = ("zh", "en")) -> list[GrammarPrompt]:
    """``count`` distinct prompts for ``batch_key``, languages alternating in the given order."""
    if count < 1:
        raise ValueError(f"prompt count must be at least 1, got {count}")
    unknown = set(languages) - {"zh", "en"}
    if not languages or unknown:
        raise ValueError(f"languages must be a non-empty subset of ('zh', 'en'), got {languages!r}")
    rng = _rng_for(batch_key)
    seen: set[str] = set()
    prompts: list[GrammarPrompt] = []
    attempts = 0
    while len(prompts) < count:
        attempts += 1
        if attempts > count * 50:
            raise ValueError(f"the grammar cannot produce {count} distinct prompts")
        language = languages[len(prompts) % len(languages)]
        category = rng.choice(sorted(CATEGORIES))
        subject = rng.choice(sorted(SUBJECTS))
        style = rng.choice(sorted(STYLES))
        palette, palette_en, palette_zh = rng.choice(PALETTES)
        layout = rng.choice(sorted(LAYOUTS))
        slogan_en, slogan_zh = rng.choice(SLOGANS)
        if language == "en":
            slogan = slogan_en
            text = _english(category, subject, style, palette_en, layout, slogan)
        else:
            slogan = slogan_zh
            text = _chinese(category, subject, style, palette_zh, layout, slogan)
        if text in seen:
            continue
        seen.add(text)
        prompts.append(GrammarPrompt(text, language, category, subject, style, palette, layout, slogan))
    return prompts
