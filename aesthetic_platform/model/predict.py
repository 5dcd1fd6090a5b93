"""Student logits for both images of every pair, and agreement with a reference ordering."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from aesthetic_platform.model.batching import PreparedImageCache, RatioBucketSampler
from aesthetic_platform.model.loss import decisive
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.model.train_step import PairCollator, PreferencePairDataset, score_pairs

EVAL_BATCH_SIZE = 32


@torch.inference_mode()
def pair_logits(
    model: AestheticScorer, pairs: Sequence, batch_size: int = EVAL_BATCH_SIZE, device: torch.device | str = "cpu",
    cache: PreparedImageCache | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """([N, D] winner logits, [N, D] loser logits) in ``model.dimensions`` order, pair order kept.

    A ``cache`` keeps the prepared images for the next call on the same pairs (validation every epoch)."""
    dims = model.dimensions
    winners = np.zeros((len(pairs), len(dims)), dtype=np.float64)
    losers = np.zeros_like(winners)
    if not pairs:
        return winners, losers
    was_training = model.training
    model.eval()
    dataset = PreferencePairDataset(pairs, model, cache)
    collate = PairCollator.for_model(model)
    sampler = RatioBucketSampler(dataset.item_grids(), batch_size=batch_size, shuffle=False)
    for indices in sampler:
        batch = collate([dataset[i] for i in indices]).to(device)
        win, lose = score_pairs(model, batch)
        for column, dim in enumerate(dims):
            winners[indices, column] = win[dim].float().cpu().numpy()
            losers[indices, column] = lose[dim].float().cpu().numpy()
    model.train(was_training)
    return winners, losers


def teacher_gaps(pairs: Sequence, dimensions: Sequence[str]) -> np.ndarray:
    """[N, D] teacher score gap (winner - loser) per dimension."""
    return np.array(
        [[pair.scores[d].winner - pair.scores[d].loser for d in dimensions] for pair in pairs], dtype=np.float64
    ).reshape(len(pairs), len(dimensions))


def agreement(winner_logits: np.ndarray, loser_logits: np.ndarray, gaps: np.ndarray, tie_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(correct [N, D] bool, counted [N, D] bool): does the student order each pair as the teacher does?
    Only decisive pairs count, with the very rule the loss masks ties by."""
    counted = decisive(gaps, tie_threshold)
    correct = np.sign(winner_logits - loser_logits) == np.sign(gaps)
    return correct & counted, counted
