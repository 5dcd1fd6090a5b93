import pytest

from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch
from aesthetic_platform.prompts.grammar import grammar_prompts
from aesthetic_platform.prompts.vocabulary import parse_elements


def test_same_batch_key_gives_identical_prompts():
    assert grammar_prompts("batch-a", 12) == grammar_prompts("batch-a", 12)


def test_different_batch_keys_differ():
    assert [p.text for p in grammar_prompts("batch-a", 8)] != [p.text for p in grammar_prompts("batch-b", 8)]


def test_prompts_are_distinct_and_bilingual_with_all_elements():
    prompts = grammar_prompts("b", 40)
    assert len({p.text for p in prompts}) == 40
    assert {p.language for p in prompts} == {"zh", "en"}
    for p in prompts:
        assert p.subject and p.style and p.palette and p.layout and p.slogan
        assert p.slogan in p.text
        if p.language == "zh":
            assert any("\u4e00" <= ch <= "\u9fff" for ch in p.text)


def test_elements_can_be_read_back_from_text():
    for p in grammar_prompts("parse", 30):
        found = parse_elements(p.text)
        assert set(found.palette) == set(p.palette), p.text
        assert found.layout == p.layout, p.text
        assert found.subject == p.subject, p.text


def test_language_selection_and_errors():
    assert {p.language for p in grammar_prompts("x", 5, ("en",))} == {"en"}
    with pytest.raises(ValueError, match="languages"):
        grammar_prompts("x", 5, ("fr",))
    with pytest.raises(ValueError, match="at least 1"):
        grammar_prompts("x", 0)


def test_batch_specs_have_hash_ids_and_no_duplicates():
    specs = build_prompt_batch("b1", PromptBatchConfig(count=10))
    assert len(specs) == 10
    assert all(s.prompt_id == "p" + s.text_hash[:15] for s in specs)
    assert len({s.text_hash for s in specs}) == 10
    assert {s.source for s in specs} == {"grammar"}
    assert build_prompt_batch("b1", PromptBatchConfig(count=10)) == specs
