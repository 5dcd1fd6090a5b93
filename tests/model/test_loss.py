"""CombinedRankingLoss (ARCHITECTURE §5): signs, tie masking, weights, loser-wins dimensions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossConfig, teacher_matrix
from aesthetic_platform.schemas import DimScores

DIMS = ("total", "composition", "color")


def _logits(values: dict[str, list[float]]) -> dict[str, torch.Tensor]:
    return {dim: torch.tensor(v, requires_grad=True) for dim, v in values.items()}


def _run(loss_fn, winner, loser, teacher_w, teacher_l):
    w, l = _logits(winner), _logits(loser)
    out = loss_fn(w, l, torch.tensor(teacher_w), torch.tensor(teacher_l))
    out.objective.backward()
    return out, w, l


def test_gradients_push_winner_up_and_loser_down():
    loss_fn = CombinedRankingLoss(DIMS)
    out, w, l = _run(
        loss_fn,
        {d: [0.0, 0.5] for d in DIMS},
        {d: [0.0, 0.7] for d in DIMS},
        [[8.0, 8.0, 8.0], [7.0, 7.0, 7.0]],
        [[5.0, 5.0, 5.0], [4.0, 4.0, 4.0]],
    )
    for dim in DIMS:
        assert (w[dim].grad < 0).all(), "gradient descent must raise the winner's logit"
        assert (l[dim].grad > 0).all(), "gradient descent must lower the loser's logit"
    expected = (F.softplus(torch.tensor(0.0)) + F.softplus(torch.tensor(0.2))) / 2
    assert torch.isclose(out.per_head["total"], expected)
    assert torch.isclose(out.objective, 3 * expected)


def test_loser_winning_a_dimension_pushes_that_head_the_other_way():
    """Seed 000 §7: the total winner may lose 'color'; that head learns the opposite order."""
    loss_fn = CombinedRankingLoss(DIMS)
    _, w, l = _run(
        loss_fn,
        {d: [0.0] for d in DIMS},
        {d: [0.0] for d in DIMS},
        [[8.5, 9.0, 7.0]],
        [[6.0, 5.0, 8.0]],
    )
    assert w["total"].grad.item() < 0 and l["total"].grad.item() > 0
    assert w["composition"].grad.item() < 0
    assert w["color"].grad.item() > 0, "the winner's colour logit must go down"
    assert l["color"].grad.item() < 0, "the loser's colour logit must go up"


def test_near_ties_are_masked_per_head():
    loss_fn = CombinedRankingLoss(DIMS, RankingLossConfig(tie_threshold=0.5))
    out, w, l = _run(
        loss_fn,
        {d: [0.0, 0.0] for d in DIMS},
        {d: [0.0, 0.0] for d in DIMS},
        # pair 0: composition is a near-tie; pair 1: colour is a near-tie
        [[8.0, 6.2, 9.0], [8.0, 9.0, 5.0]],
        [[5.0, 6.0, 3.0], [5.0, 4.0, 5.3]],
    )
    assert out.counted_pairs == {"total": 2, "composition": 1, "color": 1}
    assert w["composition"].grad[0] == 0 and l["composition"].grad[0] == 0
    assert w["composition"].grad[1] < 0
    assert w["color"].grad[1] == 0 and w["color"].grad[0] < 0
    # the mean runs over counted pairs only
    assert torch.isclose(out.per_head["composition"], F.softplus(torch.tensor(0.0)))


def test_a_head_with_only_ties_contributes_zero_and_no_gradient():
    loss_fn = CombinedRankingLoss(DIMS)
    out, w, _ = _run(
        loss_fn, {d: [0.3] for d in DIMS}, {d: [0.1] for d in DIMS}, [[8.0, 5.0, 6.0]], [[6.0, 5.0, 6.1]]
    )
    assert out.per_head["composition"].item() == 0.0 and out.per_head["color"].item() == 0.0
    assert w["composition"].grad.item() == 0.0
    assert torch.isclose(out.objective, out.per_head["total"])


def test_dimension_weights_scale_each_head():
    weights = {"total": 2.0, "composition": 0.5, "color": 0.0}
    loss_fn = CombinedRankingLoss(DIMS, RankingLossConfig(dimension_weights=weights))
    out, w, _ = _run(loss_fn, {d: [0.0] for d in DIMS}, {d: [0.0] for d in DIMS}, [[8.0, 8.0, 8.0]], [[5.0, 5.0, 5.0]])
    expected = sum(weights[d] * out.per_head[d] for d in DIMS)
    assert torch.isclose(out.objective, expected)
    assert torch.isclose(w["total"].grad, 4 * w["composition"].grad)
    assert w["color"].grad.item() == 0.0
    assert out.per_head["color"].item() > 0, "a zero-weight head is still reported"
    logged = out.log_values()
    assert set(logged) == {"loss/objective", *(f"loss/head/{d}" for d in DIMS)}
    # the minimised objective is logged, not overwritten by the head called "total"
    assert logged["loss/objective"] == pytest.approx(float(expected)) != pytest.approx(logged["loss/head/total"])


def test_margin_weighting_favours_confident_pairs():
    plain = CombinedRankingLoss(DIMS[:1])
    margin = CombinedRankingLoss(DIMS[:1], RankingLossConfig(margin_weighting=True))
    args = ({"total": [0.0, 0.0]}, {"total": [0.0, 0.0]}, [[9.0], [6.0]], [[1.0], [5.0]])
    _, w_plain, _ = _run(plain, *args)
    _, w_margin, _ = _run(margin, *args)
    assert torch.isclose(w_plain["total"].grad[0], w_plain["total"].grad[1])
    ratio = w_margin["total"].grad[0] / w_margin["total"].grad[1]
    assert torch.isclose(ratio, torch.tensor(8.0)), "gap 8 vs gap 1"


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="lacks"):
        CombinedRankingLoss(DIMS, RankingLossConfig(dimension_weights={"sharpness": 1.0}))
    with pytest.raises(ValueError, match=">= 0"):
        RankingLossConfig(dimension_weights={"total": -1.0})
    loss_fn = CombinedRankingLoss(DIMS)
    logits = {d: torch.zeros(2) for d in DIMS}
    with pytest.raises(ValueError, match="teacher_winner"):
        loss_fn(logits, logits, torch.zeros(2, 2), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="color"):
        loss_fn({"total": torch.zeros(2)}, logits, torch.zeros(2, 3), torch.zeros(2, 3))


def test_teacher_matrix_reads_pair_records():
    scores = [
        {"total": DimScores(winner=8.5, loser=6.0), "composition": DimScores(winner=9, loser=5),
         "color": DimScores(winner=7, loser=8)},
        {"total": {"winner": 7.0, "loser": 3.0}, "composition": {"winner": 1, "loser": 2},
         "color": {"winner": 3, "loser": 3}},
    ]
    winner, loser = teacher_matrix(scores, DIMS)
    assert winner.tolist() == [[8.5, 9.0, 7.0], [7.0, 1.0, 3.0]]
    assert loser.tolist() == [[6.0, 5.0, 8.0], [3.0, 2.0, 3.0]]
    with pytest.raises(ValueError, match="pair 0 has no teacher scores for \\['style_fit'\\]"):
        teacher_matrix(scores, (*DIMS, "style_fit"))
