"""The tiny model overfits 64 synthetic pairs on CPU: the whole training path is wired."""

from __future__ import annotations

import time

import numpy as np
import torch
from PIL import Image

from aesthetic_platform.model.batching import RatioBucketSampler, prepare_image, tensor_grid
from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossConfig
from aesthetic_platform.model.predict import agreement
from aesthetic_platform.model.train_step import PairCollator, PairExample, pair_loss
from aesthetic_platform.schemas import RATIOS
from tests.model.conftest import build_tiny_model

PAIRS = 64
MAX_EPOCHS = 150
BATCH_SIZE = 16
TIE_THRESHOLD = 0.5
PROMPTS = ("一张红色海报", "a calm blue poster", "金色与藏青的主视觉", "fresh green banner")


def _synthetic_image(rng: np.random.Generator, ratio: str) -> Image.Image:
    """A random two-colour image of the given ratio and a random size."""
    ratio_w, ratio_h = RATIOS[ratio]
    scale = rng.integers(12, 30)
    width, height = int(ratio_w * scale * 16 // max(ratio_w, ratio_h)), int(ratio_h * scale * 16 // max(ratio_w, ratio_h))
    base = rng.uniform(0, 255, size=3)
    array = np.clip(base + rng.normal(0, 20, size=(height, width, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(array)


def _teacher_scores(image: Image.Image, projection: np.ndarray) -> np.ndarray:
    """Per-dimension 0-10 scores that depend on the image's colour (a learnable signal)."""
    mean = np.asarray(image, dtype=np.float32).mean(axis=(0, 1)) / 255.0
    return 5.0 + 5.0 * np.tanh(projection @ (mean - 0.5) * 3.0)


def _synthetic_pairs(model, dims: int) -> list[PairExample]:
    rng = np.random.default_rng(0)
    projection = rng.normal(size=(dims, 3))
    ratios = list(RATIOS)
    examples = []
    while len(examples) < PAIRS:
        a = _synthetic_image(rng, ratios[rng.integers(len(ratios))])
        b = _synthetic_image(rng, ratios[rng.integers(len(ratios))])
        scores_a, scores_b = _teacher_scores(a, projection), _teacher_scores(b, projection)
        if abs(scores_a[0] - scores_b[0]) <= TIE_THRESHOLD:
            continue
        (winner, s_w), (loser, s_l) = sorted([(a, scores_a), (b, scores_b)], key=lambda item: -item[1][0])
        examples.append(
            PairExample(
                winner=prepare_image(winner, model.preprocess, model.config.image.patch_budget),
                loser=prepare_image(loser, model.preprocess, model.config.image.patch_budget),
                prompt=PROMPTS[len(examples) % len(PROMPTS)],
                teacher_winner=torch.tensor(s_w, dtype=torch.float32),
                teacher_loser=torch.tensor(s_l, dtype=torch.float32),
            )
        )
    return examples


def _accuracy(model, batches, loss_fn) -> float:
    model.eval()
    agree = counted = 0
    with torch.no_grad():
        for batch in batches:
            step = pair_loss(model, batch, loss_fn)
            winners = torch.stack([step.winner_logits[d] for d in model.dimensions], dim=1).numpy()
            losers = torch.stack([step.loser_logits[d] for d in model.dimensions], dim=1).numpy()
            gaps = (batch.teacher_winner - batch.teacher_loser).numpy()
            correct, decisive_pairs = agreement(winners, losers, gaps, TIE_THRESHOLD)
            agree, counted = agree + int(correct.sum()), counted + int(decisive_pairs.sum())
    model.train()
    return agree / counted


def test_tiny_model_overfits_64_pairs_on_cpu():
    started = time.perf_counter()
    model = build_tiny_model()
    examples = _synthetic_pairs(model, len(model.dimensions))
    patch = model.preprocess.patch_size
    grids = [(tensor_grid(e.winner, patch), tensor_grid(e.loser, patch)) for e in examples]
    sampler = RatioBucketSampler(grids, batch_size=BATCH_SIZE, shuffle=False)
    collate = PairCollator.for_model(model)
    batches = [collate([examples[i] for i in indices]) for indices in sampler]
    loss_fn = CombinedRankingLoss(model.dimensions, RankingLossConfig(tie_threshold=TIE_THRESHOLD))
    optimizer = torch.optim.AdamW(model.param_groups(head_lr=1e-3, tower_lr=3e-4))
    model.train()
    accuracy, epoch = 0.0, 0
    for epoch in range(1, MAX_EPOCHS + 1):
        for batch in batches:
            optimizer.zero_grad()
            pair_loss(model, batch, loss_fn).loss.objective.backward()
            optimizer.step()
        if epoch % 10 == 0:
            accuracy = _accuracy(model, batches, loss_fn)
            if accuracy == 1.0:
                break
    elapsed = time.perf_counter() - started
    assert accuracy == 1.0, f"train accuracy {accuracy:.3f} after {epoch} epochs"
    print(f"100% train accuracy after {epoch} epochs in {elapsed:.1f}s")
