"""Pairwise accuracy with honest uncertainty.

Pairs that share a prompt are not independent (the same prompt's candidates appear in
several pairs), so confidence intervals come from a *cluster* bootstrap that resamples
prompts, not pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aesthetic_platform.stats import BOOTSTRAP_SAMPLES, CONFIDENCE, cluster_bootstrap


@dataclass(frozen=True)
class Accuracy:
    accuracy: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "ci_low": self.ci_low, "ci_high": self.ci_high, "n": self.n}

    def __str__(self) -> str:
        return f"{self.accuracy:.1%} [{self.ci_low:.1%}, {self.ci_high:.1%}] (n={self.n})"


def bootstrap_accuracy(
    correct: np.ndarray,
    clusters: np.ndarray | None = None,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> Accuracy:
    """Mean of ``correct`` with a cluster-bootstrap percentile CI (each sample its own cluster by default)."""
    correct = np.asarray(correct, dtype=np.float64)
    n = int(correct.size)
    if n == 0:
        return Accuracy(float("nan"), float("nan"), float("nan"), 0)
    clusters = np.arange(n) if clusters is None else np.asarray(clusters)
    low, high = cluster_bootstrap(lambda weights: float(weights @ correct / weights.sum()), clusters, samples, confidence, seed)
    return Accuracy(float(correct.mean()), low, high, n)
