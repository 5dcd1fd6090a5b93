"""Prompts longer than the text tower reads are counted and reported before training, never cut silently."""

import json
import logging

import pytest

from aesthetic_platform.model.text import build_tiny_tokenizer, token_counts, tokenize
from aesthetic_platform.model.train_step import EXAMPLE_CHARS, check_prompt_lengths
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.training import TrainConfig, load_training_config, train
from aesthetic_platform.training.config import PROMPT_LENGTHS_KEY, TRAINING_FILE
from tests.fixtures.pairs import write_synthetic_pairs

LIMIT = 128
# within a prompt file's 2,000 characters, far over the tiny model's 128 tokens
LONG = ("a festive poster of a red lantern over a night market with gold calligraphy, " * 12).strip()
LONGER = LONG + " and a crowd of people under fireworks" * 6


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


def test_a_prompt_file_accepts_prompts_the_model_cannot_read_whole(tokenizer):
    assert PromptRecord(text=LONG).text == LONG  # the file's character limit lets it through
    tokens = token_counts(tokenizer, [LONG])[LONG]
    assert tokens > LIMIT
    assert tokenize(tokenizer, [LONG], LIMIT)["input_ids"].shape[1] == LIMIT  # what the collators feed the model


def test_counts_distinct_prompts_and_pairs_with_the_longest_as_examples(tokenizer):
    prompts = ["a red poster", LONG, "a red poster", LONG, LONGER, "minimal coffee key visual"]
    found = check_prompt_lengths(prompts, tokenizer, LIMIT)
    counts = token_counts(tokenizer, prompts)
    assert (found.prompts, found.over_limit, found.pairs_over_limit) == (4, 2, 3)
    assert found.longest == counts[LONGER] > counts[LONG] > LIMIT
    assert [tokens for _, tokens in found.examples] == [counts[LONGER], counts[LONG]]
    assert all(len(prompt) <= EXAMPLE_CHARS for prompt, _ in found.examples)
    assert found.examples[0][0].startswith("a festive poster of a red lantern")
    short = check_prompt_lengths(["a red poster"], tokenizer, LIMIT)
    assert (short.over_limit, short.pairs_over_limit, short.examples) == (0, 0, ())


def test_exactly_the_limit_is_not_over(tokenizer):
    tokens = token_counts(tokenizer, [LONG])[LONG]
    assert check_prompt_lengths([LONG], tokenizer, tokens).over_limit == 0
    assert check_prompt_lengths([LONG], tokenizer, tokens - 1).over_limit == 1


class Recorder:
    def __init__(self):
        self.rows = []

    def log_metrics(self, metrics, step):
        self.rows.append((step, dict(metrics)))


def test_training_reports_cut_prompts_in_the_log_the_metrics_the_result_and_training_json(data_root, caplog):
    pairs = write_synthetic_pairs(data_root, pairs=12)
    rows = [pair.model_copy(update={"prompt": LONG}) if i in (0, 3) else pair for i, pair in enumerate(pairs)]
    train_pairs = [p for p in rows if p.split == "train"]
    val_pairs = [p for p in rows if p.split == "val"]
    assert sum(p.prompt == LONG for p in train_pairs) == 2 and all(p.prompt != LONG for p in val_pairs)
    recorder = Recorder()
    with caplog.at_level(logging.WARNING, logger="aesthetic_platform.training.loop"):
        result = train(TrainConfig(epochs=1, batch_size=4, max_steps=1), train_pairs, val_pairs, data_root.models / "runs", logger=recorder)

    warnings = [r.getMessage() for r in caplog.records if "longer than the model's" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("1 of ") and "(2 pairs)" in warnings[0] and "128 tokens" in warnings[0]

    step, first = recorder.rows[0]
    assert step == 0
    assert first["data/prompt_token_limit"] == LIMIT
    assert first["data/train/prompts_over_token_limit"] == 1 and first["data/train/pairs_over_token_limit"] == 2
    assert first["data/val/prompts_over_token_limit"] == 0

    summary = json.loads(json.dumps(result.summary()))  # the shape entry.py writes and the asset reads
    assert summary["prompt_lengths"]["train"]["over_limit"] == 1
    assert summary["prompt_lengths"]["train"]["examples"][0]["tokens"] > LIMIT
    assert summary["prompt_lengths"]["val"]["over_limit"] == 0

    stored = json.loads((result.model_dir / TRAINING_FILE).read_text())[PROMPT_LENGTHS_KEY]
    assert stored == summary["prompt_lengths"] and stored["train"]["pairs_over_limit"] == 2
    assert load_training_config(result.model_dir) == TrainConfig(epochs=1, batch_size=4, max_steps=1)  # still loads as a config
