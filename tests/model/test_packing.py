"""Sequence packing: several images per row of tokens, exact against the unpacked forward."""

from __future__ import annotations

import random

import pytest
import torch

from aesthetic_platform.generation.sizes import size_for_ratio
from aesthetic_platform.model.batching import collate_images, patch_grid, prepare_image
from aesthetic_platform.model.packing import (
    PADDING_SEGMENT,
    PackedPairSampler,
    default_token_budget,
    pack_images,
    pack_lengths,
    tokens_for,
)
from aesthetic_platform.model.vit import masked_vit_forward, packed_vit_forward
from aesthetic_platform.schemas import RATIOS
from tests.model.conftest import build_tiny_model

TOLERANCE = 1e-4  # fp32, issue 14 "Exactness"
MAX_PADDED_FRACTION = 0.02  # issue 14 "Must hold"
PROMPT = "a red and gold poster, centered composition"


def _tensors(model, images):
    return [prepare_image(image, model.preprocess, model.config.image.patch_budget) for image in images]


def _budget(model) -> int:
    return default_token_budget(model.config.image.patch_budget)


def _packed_scores(model, tensors) -> torch.Tensor:
    packed = pack_images(tensors, model.preprocess.patch_size, _budget(model))
    with torch.no_grad():
        logits = model(packed, **model.tokenize([PROMPT] * len(tensors)))
    return torch.stack([logits[dim] for dim in model.dimensions], dim=1)


def _alone_scores(model, tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(collate_images([tensor], model.preprocess.patch_size), **model.tokenize([PROMPT]))
    return torch.stack([logits[dim] for dim in model.dimensions], dim=1)[0]


def _stream_grids(pairs: int, budget: int, seed: int) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    rng = random.Random(seed)
    ratios = list(RATIOS)

    def grid() -> tuple[int, int]:
        return patch_grid(*size_for_ratio(rng.choice(ratios), 1024 * 1024), budget)

    return [(grid(), grid()) for _ in range(pairs)]


def test_packer_covers_every_item_once_within_the_budget_and_is_deterministic():
    rng = random.Random(5)
    lengths = [rng.randint(20, 65) for _ in range(101)]
    rows = pack_lengths(lengths, 260)
    assert sorted(index for row in rows for index in row) == list(range(len(lengths)))
    assert all(sum(lengths[index] for index in row) <= 260 for row in rows)
    assert rows == pack_lengths(lengths, 260)
    with pytest.raises(ValueError, match="does not fit"):
        pack_lengths([300], 260)


@pytest.mark.parametrize("patch_budget", [64, 256])
@pytest.mark.parametrize("batch_size", [16, 32, 64])
def test_padding_under_two_percent_on_a_mixed_five_ratio_stream(patch_budget, batch_size):
    grids = _stream_grids(512, patch_budget, seed=batch_size)
    sampler = PackedPairSampler(grids, batch_size, default_token_budget(patch_budget), seed=1)
    assert sampler.padded_fraction() <= MAX_PADDED_FRACTION


def test_sampler_is_a_seeded_shuffle_cut_into_batches():
    grids = _stream_grids(50, 64, seed=0)
    first = PackedPairSampler(grids, 8, 260, seed=3)
    again = PackedPairSampler(grids, 8, 260, seed=3)
    assert first.batches() == again.batches()
    assert sorted(index for batch in first.batches() for index in batch) == list(range(50))
    first.set_epoch(1)
    assert first.batches() != again.batches()
    assert PackedPairSampler(grids, 8, 260, seed=4).batches() != again.batches()


def test_packed_scores_equal_unpacked_scores(tiny_model, sample_images):
    tensors = _tensors(tiny_model, sample_images.values())
    packed = _packed_scores(tiny_model, tensors)
    for index, tensor in enumerate(tensors):
        difference = (packed[index] - _alone_scores(tiny_model, tensor)).abs().max().item()
        assert difference <= TOLERANCE, f"image {index}: packed scores differ by {difference}"


def test_packed_scores_do_not_depend_on_row_neighbours(tiny_model, sample_images):
    tensors = _tensors(tiny_model, sample_images.values())
    target = tensors[0]
    generator = torch.Generator().manual_seed(11)
    noise = [torch.randn(tensor.shape, generator=generator) * 10 for tensor in tensors[1:]]
    with_samples = _packed_scores(tiny_model, [target, *tensors[1:]])
    with_noise = _packed_scores(tiny_model, [*noise[::-1], target])
    packed = pack_images([target, *tensors[1:]], tiny_model.preprocess.patch_size, _budget(tiny_model))
    assert any((packed.segment_ids[row] == 0).any() and (packed.segment_ids[row] > 0).any() for row in range(packed.rows))
    assert (with_samples[0] - with_noise[-1]).abs().max().item() <= TOLERANCE


def test_no_token_attends_across_images(tiny_model, sample_images):
    tensors = _tensors(tiny_model, sample_images.values())
    packed = pack_images(tensors, tiny_model.preprocess.patch_size, _budget(tiny_model))
    mask = packed.attention_mask()[:, 0]
    segments = packed.segment_ids
    assert torch.equal(mask, segments[:, :, None] == segments[:, None, :])
    real = segments != PADDING_SEGMENT
    assert not (mask & real[:, :, None] & ~real[:, None, :]).any(), "a real token sees padding"
    # functional check: image 0's features have zero gradient with respect to every other image's pixels
    patches = packed.patches.clone().requires_grad_(True)
    packed.patches = patches
    features = packed_vit_forward(tiny_model.visual, packed)
    features[0].sum().backward()
    grad = patches.grad.abs().sum(-1)
    assert grad[segments == 0].sum() > 0
    assert torch.equal(grad[segments != 0], torch.zeros_like(grad[segments != 0]))


def test_packed_average_pooling_matches_the_padded_forward(sample_images):
    model = build_tiny_model().eval()
    model.visual.pool_type = "avg"
    tensors = _tensors(model, list(sample_images.values())[:4])
    with torch.no_grad():
        packed = packed_vit_forward(model.visual, pack_images(tensors, model.preprocess.patch_size, _budget(model)))
        padded = masked_vit_forward(model.visual, collate_images(tensors, model.preprocess.patch_size))
    assert (packed - padded).abs().max().item() <= TOLERANCE


def test_a_row_holds_several_images_and_tokens_are_counted_with_the_class_token():
    images = [torch.zeros(3, 16 * rows, 16 * cols) for rows, cols in ((8, 8), (6, 10), (10, 6), (7, 9))]
    packed = pack_images(images, 16, 4 * 65)
    assert packed.rows == 1
    assert packed.segment_ids.shape[1] == sum(tokens_for(grid) for grid in ((8, 8), (6, 10), (10, 6), (7, 9)))
    assert packed.padded_fraction == 0.0


def test_scorer_packs_mixed_sizes_and_matches_each_image_alone(tiny_model, sample_images):
    from aesthetic_platform.scoring import Scorer

    scorer = Scorer(tiny_model, device="cpu", batch_size=5)
    images = list(sample_images.values())
    results = scorer.score(images, PROMPT)
    for image, result in zip(images, results, strict=True):
        alone = _alone_scores(tiny_model, _tensors(tiny_model, [image])[0])
        got = torch.tensor([result[dim] for dim in tiny_model.dimensions])
        assert (got - alone).abs().max().item() <= TOLERANCE


def _pair_examples(model, sample_images, count: int):
    from aesthetic_platform.model.train_step import PairExample

    tensors = _tensors(model, sample_images.values())
    generator = torch.Generator().manual_seed(2)
    dims = len(model.dimensions)
    return [
        PairExample(
            winner=tensors[index % len(tensors)],
            loser=tensors[(3 * index + 1) % len(tensors)],
            prompt=PROMPT if index % 2 else "一张蓝色的海报",
            teacher_winner=torch.rand(dims, generator=generator) * 4 + 5,
            teacher_loser=torch.rand(dims, generator=generator) * 4 + 1,
        )
        for index in range(count)
    ]


def test_packed_pair_training_follows_the_padded_loss_trajectory(sample_images):
    """Same pairs, same init, three SGD steps: packed and padded gradients, losses and weights agree.

    (SGD, not Adam: Adam's first steps divide by the gradient's own size, so float noise on a
    near-zero gradient becomes a full step; the maths compared here is the forward and backward.)
    """
    from aesthetic_platform.model.loss import CombinedRankingLoss
    from aesthetic_platform.model.train_step import PackedPairCollator, PairCollator, pair_loss
    from aesthetic_platform.training.loop import set_tower_dropout

    runs, gradients = {}, {}
    for name in ("padded", "packed"):
        model = build_tiny_model(head_dropout=0.0).train()
        set_tower_dropout(model, 0.0)  # XLM-R's own dropout would draw different masks per run
        collate = PackedPairCollator.for_model(model) if name == "packed" else PairCollator.for_model(model)
        examples = _pair_examples(model, sample_images, 6)
        loss_fn = CombinedRankingLoss(model.dimensions)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        losses = []
        for step in range(3):
            batch = collate(examples[2 * step : 2 * step + 4])
            objective = pair_loss(model, batch, loss_fn).loss.objective
            objective.backward()
            if step == 0:
                gradients[name] = {key: p.grad.clone() for key, p in model.named_parameters() if p.grad is not None}
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(objective.item())
        runs[name] = (losses, model.image_projection.weight.detach().clone())
    assert max(abs(a - b) for a, b in zip(runs["padded"][0], runs["packed"][0], strict=True)) <= TOLERANCE
    assert (runs["padded"][1] - runs["packed"][1]).abs().max().item() <= TOLERANCE
    assert gradients["padded"].keys() == gradients["packed"].keys()
    for key, grad in gradients["padded"].items():
        assert (grad - gradients["packed"][key]).abs().max().item() <= TOLERANCE, key


def test_packed_pair_batch_pairs_the_sides_back_by_id(tiny_model, sample_images):
    from aesthetic_platform.model.train_step import PackedPairCollator, PairCollator, score_pairs

    examples = _pair_examples(tiny_model, sample_images, 5)
    packed = PackedPairCollator.for_model(tiny_model)(examples)
    assert torch.equal(packed.winner_ids, torch.arange(5)) and torch.equal(packed.loser_ids, torch.arange(5, 10))
    with torch.no_grad():
        got = score_pairs(tiny_model, packed)
        expected = score_pairs(tiny_model, PairCollator.for_model(tiny_model)(examples))
    for side in range(2):
        for dim in tiny_model.dimensions:
            assert (got[side][dim] - expected[side][dim]).abs().max().item() <= TOLERANCE


def test_packed_forward_with_gradient_checkpointing_gives_the_same_gradients(sample_images):
    tensors = _tensors(build_tiny_model(), list(sample_images.values())[:3])
    gradients = []
    for enabled in (False, True):
        model = build_tiny_model().eval()
        model.set_gradient_checkpointing(enabled)
        packed = pack_images(tensors, model.preprocess.patch_size, _budget(model))
        packed_vit_forward(model.visual, packed).square().sum().backward()
        gradients.append({name: p.grad.clone() for name, p in model.visual.named_parameters() if p.grad is not None})
    assert gradients[0].keys() == gradients[1].keys() and gradients[0]
    for name, grad in gradients[0].items():
        assert torch.allclose(grad, gradients[1][name], atol=1e-6), name
