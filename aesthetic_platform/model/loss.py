"""The combined ranking loss (ARCHITECTURE §5, seed 000 §2.2).

For each head d and pair i with teacher scores (s_w, s_l):

    y_i   = sign(s_w - s_l)                          (the loser may win a sub-dimension)
    m_i   = |s_w - s_l| > tie_threshold              (near-ties say nothing: masked)
    L_d   = sum_i m_i a_i softplus(-y_i (f_d(w_i) - f_d(l_i))) / sum_i m_i a_i
    objective = sum_d weight_d L_d

``a_i`` is 1, or with margin weighting the teacher gap |s_w - s_l| (normalised by the
weighted mean, so a confident verdict counts more than a marginal one). Every head's
loss is returned separately so it can be logged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator


def decisive(teacher_gap, tie_threshold: float):
    """Pairs whose teacher gap is wider than the tie threshold (torch or numpy): the only ones a head learns or is scored on."""
    return abs(teacher_gap) > tie_threshold


class RankingLossConfig(BaseModel):
    """Loss settings that live in the training config, not in code."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dimension_weights: dict[str, float] = Field(
        default_factory=dict, description="weight per dimension; a dimension left out gets weight 1"
    )
    tie_threshold: float = Field(
        default=0.5, ge=0.0, description="Teacher gaps at or below this (on the judge's scale) are ties: masked for that head."
    )
    margin_weighting: bool = Field(default=False, description="weight each pair by its teacher gap")

    @model_validator(mode="after")
    def _weights_non_negative(self) -> RankingLossConfig:
        negative = {dim: weight for dim, weight in self.dimension_weights.items() if weight < 0}
        if negative:
            raise ValueError(f"dimension weights must be >= 0, got {negative}")
        return self


@dataclass
class RankingLossOutput:
    objective: torch.Tensor  # sum_d weight_d L_d: what the optimizer minimises
    per_head: dict[str, torch.Tensor]
    counted_pairs: dict[str, int]  # pairs left for each head after tie masking

    def log_values(self) -> dict[str, float]:
        """Flat floats for a tracker: ``loss/objective`` (the minimised sum) and ``loss/head/<dim>`` per head.

        A head may be called ``total``, so the combined loss never shares a name with a head."""
        values = {"loss/objective": float(self.objective.detach())}
        values.update({f"loss/head/{dim}": float(loss.detach()) for dim, loss in self.per_head.items()})
        return values


class CombinedRankingLoss(torch.nn.Module):
    def __init__(self, dimensions: Sequence[str], config: RankingLossConfig | None = None) -> None:
        super().__init__()
        self.config = config or RankingLossConfig()
        unknown = set(self.config.dimension_weights) - set(dimensions)
        if unknown:
            raise ValueError(f"weights given for dimensions the model lacks: {sorted(unknown)}")
        self.dimensions = tuple(dimensions)
        self.weights = {dim: self.config.dimension_weights.get(dim, 1.0) for dim in self.dimensions}

    def forward(
        self,
        winner_logits: Mapping[str, torch.Tensor],
        loser_logits: Mapping[str, torch.Tensor],
        teacher_winner: torch.Tensor,
        teacher_loser: torch.Tensor,
    ) -> RankingLossOutput:
        """Logits are {dim: [B]}; teacher scores are [B, D] in ``self.dimensions`` order."""
        self._check_shapes(winner_logits, loser_logits, teacher_winner, teacher_loser)
        per_head: dict[str, torch.Tensor] = {}
        counted: dict[str, int] = {}
        total = None
        for column, dim in enumerate(self.dimensions):
            gap = (teacher_winner[:, column] - teacher_loser[:, column]).to(winner_logits[dim].dtype)
            per_head[dim], counted[dim] = self._head_loss(winner_logits[dim] - loser_logits[dim], gap)
            weighted = self.weights[dim] * per_head[dim]
            total = weighted if total is None else total + weighted
        assert total is not None  # _check_shapes has already required at least one dimension
        return RankingLossOutput(objective=total, per_head=per_head, counted_pairs=counted)

    def _head_loss(self, logit_gap: torch.Tensor, teacher_gap: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Bradley-Terry on one head; zero (with a zero gradient) when every pair is a tie."""
        target = torch.sign(teacher_gap)
        keep = decisive(teacher_gap, self.config.tie_threshold)
        pair_weight = keep.to(logit_gap.dtype)
        if self.config.margin_weighting:
            pair_weight = pair_weight * teacher_gap.abs()
        normaliser = pair_weight.sum()
        losses = F.softplus(-target * logit_gap)
        if normaliser <= 0:
            return (losses * 0.0).sum(), 0
        return (losses * pair_weight).sum() / normaliser, int(keep.sum())

    def _check_shapes(self, winner_logits, loser_logits, teacher_winner, teacher_loser) -> None:
        missing = [dim for dim in self.dimensions if dim not in winner_logits or dim not in loser_logits]
        if missing:
            raise ValueError(f"model outputs lack dimensions {missing}")
        expected = (winner_logits[self.dimensions[0]].shape[0], len(self.dimensions))
        for name, scores in (("teacher_winner", teacher_winner), ("teacher_loser", teacher_loser)):
            if tuple(scores.shape) != expected:
                raise ValueError(f"{name} must have shape [pairs, dimensions] = {expected}, got {tuple(scores.shape)}")


def teacher_matrix(scores: Sequence[Mapping[str, Mapping[str, float]]], dimensions: Sequence[str]) -> tuple[
    torch.Tensor, torch.Tensor
]:
    """Pair records' ``{dim: {winner, loser}}`` -> ([B, D] winner, [B, D] loser) in ``dimensions`` order."""
    winner_rows, loser_rows = [], []
    for index, record in enumerate(scores):
        missing = [dim for dim in dimensions if dim not in record]
        if missing:
            raise ValueError(f"pair {index} has no teacher scores for {missing}")
        winner_rows.append([float(_field(record[dim], "winner")) for dim in dimensions])
        loser_rows.append([float(_field(record[dim], "loser")) for dim in dimensions])
    return torch.tensor(winner_rows, dtype=torch.float32), torch.tensor(loser_rows, dtype=torch.float32)


def _field(dim_scores, name: str) -> float:
    """Accepts a ``DimScores`` model or a plain ``{winner, loser}`` dict."""
    return dim_scores[name] if isinstance(dim_scores, Mapping) else getattr(dim_scores, name)
