"""PreferencePair rows -> bucketed DataLoader -> loss: the path the training loop uses."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from aesthetic_platform.model.batching import RatioBucketSampler
from aesthetic_platform.model.loss import CombinedRankingLoss
from aesthetic_platform.model.train_step import PairCollator, PreferencePairDataset, pair_loss
from aesthetic_platform.schemas import DimScores, PreferencePair
from tests.model.conftest import posters

RATIO_PAIRS = [("16:9", "9:16"), ("16:9", "9:16"), ("1:1", "3:4"), ("16:9", "9:16"), ("1:1", "3:4"), ("4:3", "1:1")]


def _pairs(folder, dimensions) -> list[PreferencePair]:
    images = posters(pixel_budget=96 * 96)
    paths = {}
    for ratio, image in images.items():
        paths[ratio] = folder / f"{ratio.replace(':', 'x')}.png"
        image.save(paths[ratio])
    rows = []
    for index, (winner, loser) in enumerate(RATIO_PAIRS):
        scores = {dim: DimScores(winner=8.0, loser=4.0 + (5.0 if dim == "color" else 0.0)) for dim in dimensions}
        rows.append(
            PreferencePair(
                pair_id=f"pair{index}", batch="b1", prompt_id="p1", prompt="国潮风格的月饼礼盒海报",
                prompt_hash="h", winner_id=f"w{index}", loser_id=f"l{index}",
                image_winner_path=str(paths[winner]), image_loser_path=str(paths[loser]),
                winner_ratio=winner, loser_ratio=loser, scores=scores, judge_model="heuristic",
                judge_prompt_version="v1", consistent=True, split="train",
            )
        )
    return rows


def test_preference_pairs_train_through_a_bucketed_loader(tmp_path, tiny_model):
    dataset = PreferencePairDataset(_pairs(tmp_path, tiny_model.dimensions), tiny_model)
    grids = dataset.item_grids()
    assert grids[0] == grids[1] != grids[2]
    sampler = RatioBucketSampler(grids, batch_size=3, shuffle=False)
    assert sampler.padded_fraction() < 0.2
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=PairCollator.for_model(tiny_model))
    loss_fn = CombinedRankingLoss(tiny_model.dimensions)
    batches = list(loader)
    assert sum(len(batch) for batch in batches) == len(RATIO_PAIRS)
    pure = batches[[len({grids[i] for i in b}) for b in sampler.batches()].index(1)]
    assert pure.winners.padded_fraction == 0.0 and pure.losers.padded_fraction == 0.0
    color = tiny_model.dimensions.index("color")
    assert bool((pure.teacher_loser[:, color] > pure.teacher_winner[:, color]).all())
    with torch.no_grad():
        step = pair_loss(tiny_model, pure, loss_fn)
    assert torch.isfinite(step.loss.objective)
    assert set(step.loss.per_head) == set(tiny_model.dimensions)
