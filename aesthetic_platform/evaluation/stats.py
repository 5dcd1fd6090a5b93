"""Pairwise accuracy with honest uncertainty.

Pairs that share a prompt are not independent (the same prompt's candidates appear in
several pairs), so confidence intervals come from a *cluster* bootstrap that resamples
prompts, not pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


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
    """Mean of ``correct`` with a percentile bootstrap CI, resampling whole clusters."""
    correct = np.asarray(correct, dtype=np.float64)
    n = int(correct.size)
    if n == 0:
        return Accuracy(float("nan"), float("nan"), float("nan"), 0)
    clusters = np.arange(n) if clusters is None else np.asarray(clusters)
    _, cluster_index = np.unique(clusters, return_inverse=True)
    n_clusters = int(cluster_index.max()) + 1
    sums = np.bincount(cluster_index, weights=correct, minlength=n_clusters)
    counts = np.bincount(cluster_index, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_clusters, size=(samples, n_clusters))
    resampled = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return Accuracy(float(correct.mean()), float(low), float(high), n)
