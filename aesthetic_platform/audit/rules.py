"""Prompt rules: configurable term lists in Chinese and English, matched on normalised text.

Normalisation (both text and terms): Unicode NFKC, which folds full-width letters,
digits, punctuation and the ideographic space to their half-width forms (``ＮＵＤＥ`` ->
``NUDE``) and half-width katakana to full-width; then case folding; invisible format
characters (zero-width spaces and joiners) are dropped and whitespace runs collapse to
one space. Terms made of Latin letters or digits match whole words only, with an
optional plural ``s``/``es`` (``meth`` does not match ``method``; ``nudes`` matches
``nude``); Chinese terms match anywhere, as Chinese has no spaces between words.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from aesthetic_platform.audit.config import AuditConfig

_WORDCHAR = r"0-9a-z\u00c0-\u024f"
_IS_WORDCHAR = re.compile(f"[{_WORDCHAR}]")
_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _SPACES.sub(" ", text).strip()


def _pattern(term: str) -> re.Pattern[str]:
    body = re.escape(term).replace(r"\ ", " ")
    if _IS_WORDCHAR.match(term[-1]):
        body += "(?:e?s)?" + f"(?![{_WORDCHAR}])"
    if _IS_WORDCHAR.match(term[0]):
        body = f"(?<![{_WORDCHAR}])" + body
    return re.compile(body)


@dataclass(frozen=True)
class RuleHit:
    category: str
    term: str
    matched: str

    def label(self) -> str:
        return f"{self.category}:{self.term}"


def builtin_terms() -> dict[str, list[str]]:
    raw = json.loads(resources.files("aesthetic_platform.audit").joinpath("terms.json").read_text(encoding="utf-8"))
    return {k: v for k, v in raw.items() if not k.startswith("_")}


def load_terms(path: str | Path) -> dict[str, list[str]]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not all(isinstance(v, list) for k, v in raw.items() if not k.startswith("_")):
        raise ValueError(f"{path}: expected a JSON object {{category: [terms]}}")
    return {k: [str(t) for t in v] for k, v in raw.items() if not k.startswith("_")}


class TermRules:
    """Term lists per category, compiled once; ``screen(text)`` returns every hit."""

    def __init__(self, terms: Mapping[str, Iterable[str]], allow: Iterable[str] = ()) -> None:
        self.terms = {cat: sorted({normalize(t) for t in ts if normalize(t)}) for cat, ts in terms.items()}
        self._patterns = [(cat, term, _pattern(term)) for cat, ts in sorted(self.terms.items()) for term in ts]
        self._allow = [_pattern(a) for a in sorted({normalize(a) for a in allow if normalize(a)}, key=len, reverse=True)]

    @classmethod
    def from_config(cls, config: AuditConfig) -> TermRules:
        terms = load_terms(config.terms_file) if config.terms_file else builtin_terms()
        merged = {cat: list(ts) for cat, ts in terms.items()}
        for cat, extra in config.extra_terms.items():
            merged.setdefault(cat, []).extend(extra)
        return cls(merged, config.allow_terms)

    def screen(self, text: str) -> list[RuleHit]:
        clean = normalize(text)
        for allowed in self._allow:
            clean = allowed.sub(lambda m: " " * len(m.group(0)), clean)
        hits = []
        for category, term, pattern in self._patterns:
            match = pattern.search(clean)
            if match:
                hits.append(RuleHit(category, term, match.group(0)))
        return hits

    def fingerprint(self) -> dict:
        return {"terms": self.terms, "allow": [p.pattern for p in self._allow]}
