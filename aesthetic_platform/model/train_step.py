"""One training step on preference pairs: data set, pair collate, loss and accuracy.

The training loop, tracking and orchestration build on these pieces; everything here
is plain torch so it runs the same in a test, a notebook or a Dagster asset.

A pair's two images may have different sizes and ratios: winners and losers are padded
as two separate batches, and ``RatioBucketSampler`` over ``(winner grid, loser grid)``
keys makes each side of a batch share one grid, so a bucketed batch has no padding.
The prompt is encoded once and shared by both sides.

Packed (``PackedPairCollator``): every image of a batch, winners and losers alike, goes
into the same packed rows (``model/packing.py``), wherever its partner lands; the image
tower runs once and the loss pairs the two sides back by their image ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from aesthetic_platform.images import image_size
from aesthetic_platform.model.batching import ImageBatch, ItemGrids, PreparedImageCache, collate_images, patch_grid, prepare_image
from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossOutput, teacher_matrix
from aesthetic_platform.model.packing import PackedImages, default_token_budget, pack_images
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.model.text import token_counts, tokenize

#: Prompts over the token limit quoted by ``PromptLengths`` (each cut to ``EXAMPLE_CHARS`` characters).
EXAMPLES = 3
EXAMPLE_CHARS = 120


@dataclass
class PairExample:
    winner: torch.Tensor  # [3, h, w] prepared image
    loser: torch.Tensor
    prompt: str
    teacher_winner: torch.Tensor  # [D]
    teacher_loser: torch.Tensor  # [D]


@dataclass
class PairBatch:
    winners: ImageBatch
    losers: ImageBatch
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    teacher_winner: torch.Tensor  # [B, D]
    teacher_loser: torch.Tensor  # [B, D]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PairBatch:
        return PairBatch(
            winners=self.winners.to(device, dtype),
            losers=self.losers.to(device, dtype),
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            teacher_winner=self.teacher_winner.to(device),
            teacher_loser=self.teacher_loser.to(device),
        )

    def pin_memory(self) -> PairBatch:
        return PairBatch(
            winners=self.winners.pin_memory(),
            losers=self.losers.pin_memory(),
            input_ids=self.input_ids.pin_memory(),
            attention_mask=self.attention_mask.pin_memory(),
            teacher_winner=self.teacher_winner.pin_memory(),
            teacher_loser=self.teacher_loser.pin_memory(),
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class PairCollator:
    """``collate_fn`` for a DataLoader of ``PairExample``s."""

    def __init__(self, tokenizer, max_length: int, patch_size: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.patch_size = patch_size

    @classmethod
    def for_model(cls, model: AestheticScorer) -> PairCollator:
        return cls(model.tokenizer, model.config.text.max_length, model.preprocess.patch_size)

    def __call__(self, examples: Sequence[PairExample]) -> PairBatch:
        text = tokenize(self.tokenizer, [example.prompt for example in examples], self.max_length)
        return PairBatch(
            winners=collate_images([example.winner for example in examples], self.patch_size),
            losers=collate_images([example.loser for example in examples], self.patch_size),
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            teacher_winner=torch.stack([example.teacher_winner for example in examples]),
            teacher_loser=torch.stack([example.teacher_loser for example in examples]),
        )


@dataclass
class PackedPairBatch:
    """A batch of pairs whose 2B images share packed rows; ``winner_ids``/``loser_ids`` index the images."""

    images: PackedImages
    winner_ids: torch.Tensor  # [B] long
    loser_ids: torch.Tensor  # [B] long
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    teacher_winner: torch.Tensor  # [B, D]
    teacher_loser: torch.Tensor  # [B, D]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PackedPairBatch:
        return PackedPairBatch(
            images=self.images.to(device, dtype),
            winner_ids=self.winner_ids.to(device),
            loser_ids=self.loser_ids.to(device),
            input_ids=self.input_ids.to(device),
            attention_mask=self.attention_mask.to(device),
            teacher_winner=self.teacher_winner.to(device),
            teacher_loser=self.teacher_loser.to(device),
        )

    def pin_memory(self) -> PackedPairBatch:
        return PackedPairBatch(
            images=self.images.pin_memory(),
            winner_ids=self.winner_ids.pin_memory(),
            loser_ids=self.loser_ids.pin_memory(),
            input_ids=self.input_ids.pin_memory(),
            attention_mask=self.attention_mask.pin_memory(),
            teacher_winner=self.teacher_winner.pin_memory(),
            teacher_loser=self.teacher_loser.pin_memory(),
        )

    def __len__(self) -> int:
        return self.input_ids.shape[0]


class PackedPairCollator:
    """``collate_fn`` packing winners then losers into rows of ``token_budget`` tokens (image i of a pair
    batch of B: winner i is image i, loser i is image B + i, the order ``PackedPairSampler`` packs)."""

    def __init__(self, tokenizer, max_length: int, patch_size: int, token_budget: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.patch_size = patch_size
        self.token_budget = token_budget

    @classmethod
    def for_model(cls, model: AestheticScorer, token_budget: int | None = None) -> PackedPairCollator:
        budget = token_budget or default_token_budget(model.config.image.patch_budget)
        return cls(model.tokenizer, model.config.text.max_length, model.preprocess.patch_size, budget)

    def __call__(self, examples: Sequence[PairExample]) -> PackedPairBatch:
        text = tokenize(self.tokenizer, [example.prompt for example in examples], self.max_length)
        images = [example.winner for example in examples] + [example.loser for example in examples]
        count = len(examples)
        return PackedPairBatch(
            images=pack_images(images, self.patch_size, self.token_budget),
            winner_ids=torch.arange(count),
            loser_ids=torch.arange(count, 2 * count),
            input_ids=text["input_ids"],
            attention_mask=text["attention_mask"],
            teacher_winner=torch.stack([example.teacher_winner for example in examples]),
            teacher_loser=torch.stack([example.teacher_loser for example in examples]),
        )


@dataclass(frozen=True)
class PromptLengths:
    """How many of a split's prompts the text tower sees only in part: a prompt file accepts far more
    characters than the model reads tokens, and ``tokenize`` keeps only the first ``max_tokens``."""

    max_tokens: int
    prompts: int  # distinct prompts
    over_limit: int  # distinct prompts longer than max_tokens
    pairs_over_limit: int
    longest: int  # tokens of the longest prompt
    examples: tuple[tuple[str, int], ...] = ()  # (start of the prompt, its tokens), longest first

    def summary(self) -> dict[str, Any]:
        return {
            "max_tokens": self.max_tokens, "prompts": self.prompts, "over_limit": self.over_limit,
            "pairs_over_limit": self.pairs_over_limit, "longest_tokens": self.longest,
            "examples": [{"prompt": prompt, "tokens": tokens} for prompt, tokens in self.examples],
        }


def check_prompt_lengths(prompts: Sequence[str], tokenizer, max_tokens: int) -> PromptLengths:
    """Count the prompts (one per pair) the tokenizer will cut at ``max_tokens``, with the longest as examples."""
    counts = token_counts(tokenizer, prompts)
    over = sorted(((prompt, n) for prompt, n in counts.items() if n > max_tokens), key=lambda item: (-item[1], item[0]))
    return PromptLengths(
        max_tokens=max_tokens,
        prompts=len(counts),
        over_limit=len(over),
        pairs_over_limit=sum(1 for prompt in prompts if counts[prompt] > max_tokens),
        longest=max(counts.values(), default=0),
        examples=tuple((_excerpt(prompt), n) for prompt, n in over[:EXAMPLES]),
    )


def _excerpt(prompt: str) -> str:
    flat = " ".join(prompt.split())
    return flat if len(flat) <= EXAMPLE_CHARS else flat[: EXAMPLE_CHARS - 1] + "…"


class PreferencePairDataset(torch.utils.data.Dataset):
    """``PreferencePair`` rows (seed 000 §7 records) -> ``PairExample``s, images read on access
    (prepared once and kept when a ``cache`` is given)."""

    def __init__(self, pairs: Sequence, model: AestheticScorer, cache: PreparedImageCache | None = None) -> None:
        self.pairs = list(pairs)
        self.cache = cache
        self.preprocess = model.preprocess
        self.patch_budget = model.config.image.patch_budget
        self.teacher_winner, self.teacher_loser = teacher_matrix(
            [pair.scores for pair in self.pairs], model.dimensions
        )

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> PairExample:
        pair = self.pairs[index]
        return PairExample(
            winner=self._image(pair.image_winner_path),
            loser=self._image(pair.image_loser_path),
            prompt=pair.prompt,
            teacher_winner=self.teacher_winner[index],
            teacher_loser=self.teacher_loser[index],
        )

    def _image(self, path: str) -> torch.Tensor:
        if self.cache is None:
            return prepare_image(path, self.preprocess, self.patch_budget)
        return self.cache.get(path, lambda: prepare_image(path, self.preprocess, self.patch_budget))

    def item_grids(self) -> list[ItemGrids]:
        """(winner grid, loser grid) per pair from image headers only, for ``RatioBucketSampler``."""
        return [
            (self._grid(pair.image_winner_path), self._grid(pair.image_loser_path)) for pair in self.pairs
        ]

    def _grid(self, path: str | Path):
        return patch_grid(*image_size(path), self.patch_budget)


def score_pairs(
    model: AestheticScorer, batch: PairBatch | PackedPairBatch
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """({dim: [B]} winner logits, {dim: [B]} loser logits), the prompt encoded once for both."""
    text = model.encode_text(batch.input_ids, batch.attention_mask)
    if isinstance(batch, PackedPairBatch):
        features = model.encode_images(batch.images)
        sides = torch.cat([batch.winner_ids, batch.loser_ids])
        both = model.score_features(features[sides], torch.cat([text, text]))  # the heads run once for both sides
        count = len(batch)
        return {d: v[:count] for d, v in both.items()}, {d: v[count:] for d, v in both.items()}
    winners = model.score_features(model.encode_images(batch.winners), text)
    losers = model.score_features(model.encode_images(batch.losers), text)
    return winners, losers


@dataclass
class PairStep:
    loss: RankingLossOutput
    winner_logits: dict[str, torch.Tensor]
    loser_logits: dict[str, torch.Tensor]


def pair_loss(model: AestheticScorer, batch: PairBatch | PackedPairBatch, loss_fn: CombinedRankingLoss) -> PairStep:
    """Forward both sides and the combined ranking loss (call ``.loss.objective.backward()``)."""
    winners, losers = score_pairs(model, batch)
    loss = loss_fn(winners, losers, batch.teacher_winner, batch.teacher_loser)
    return PairStep(loss=loss, winner_logits=winners, loser_logits=losers)
