"""Prompt rules: Chinese and English terms, NFKC full-width/half-width folding, word boundaries."""

from __future__ import annotations

import json

import pytest

from aesthetic_platform.audit import AuditConfig, TermRules, builtin_terms, normalize


@pytest.fixture(scope="module")
def rules() -> TermRules:
    return TermRules.from_config(AuditConfig())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A NUDE figure study", {"sexual:nude"}),
        ("Ａ ＮＵＤＥ ｆｉｇｕｒｅ", {"sexual:nude"}),  # full-width letters and space
        ("nudes at dawn", {"sexual:nude"}),  # plural
        ("海报：裸体模特", {"sexual:裸体"}),  # Chinese matches inside a phrase
        ("裸体nude图", {"sexual:裸体", "sexual:nude"}),  # a Latin term next to Chinese characters is a word of its own
        ("self\u200b-harm awareness", {"self_harm:self-harm"}),  # zero-width space dropped
        ("SELF   HARM", {"self_harm:self harm"}),  # whitespace runs
        ("a method for crafting posters", set()),  # 'meth' is not a word here
        ("gorgeous gradients", set()),  # 'gore' is not a word here
        ("a quiet lighthouse poster", set()),
        ("自杀 hotline flyer", {"self_harm:自杀"}),
    ],
)
def test_terms_match_on_normalised_text(rules, text, expected):
    assert {h.label() for h in rules.screen(text)} == expected


def test_allow_and_extra_terms_and_term_files(tmp_path):
    config = AuditConfig(extra_terms={"violence": ["blood"], "brand": ["ＡＣＭＥ"]}, allow_terms=["blood orange"])
    rules = TermRules.from_config(config)
    assert rules.screen("a blood orange still life") == []
    assert {h.label() for h in rules.screen("blood on the floor, acme logo")} == {"violence:blood", "brand:acme"}
    path = tmp_path / "terms.json"
    path.write_text(json.dumps({"_about": "house list", "weapons": ["rifle", "步枪"]}), encoding="utf-8")
    custom = TermRules.from_config(AuditConfig(terms_file=str(path)))
    assert set(custom.terms) == {"weapons"}
    assert [h.label() for h in custom.screen("Rifles and 步枪 poster; nude")] == ["weapons:rifle", "weapons:步枪"]


def test_builtin_lists_hold_both_languages():
    terms = builtin_terms()
    for category, words in terms.items():
        assert any(w.isascii() for w in words) and any(not w.isascii() for w in words), category
    assert normalize("Ｎｅｏｎ　ＰＯＳＴＥＲ") == "neon poster"


def test_grammar_prompts_pass_the_builtin_rules():
    """The built-in prompt grammar is not flagged by the built-in lists (the demo's audit passes)."""
    from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch

    rules = TermRules(builtin_terms())
    specs = [s for b in range(10) for s in build_prompt_batch(f"g{b}", PromptBatchConfig(count=20))]
    assert [s.text for s in specs if rules.screen(s.text)] == []
