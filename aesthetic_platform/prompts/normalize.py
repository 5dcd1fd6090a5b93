"""Prompt identity: the same prompt written twice must hash the same."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)


def normalize_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed, punctuation trimmed at both ends."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _EDGE_PUNCT.sub("", _SPACE.sub(" ", folded)).strip()


def text_hash(text: str) -> str:
    return hashlib.sha256(normalize_text(text).encode("utf-8")).hexdigest()


def prompt_id_for(text: str) -> str:
    return "p" + text_hash(text)[:15]


def detect_language(text: str) -> str:
    """'zh' when the text holds any CJK ideograph, else 'en'."""
    return "zh" if any("\u4e00" <= ch <= "\u9fff" for ch in text) else "en"
