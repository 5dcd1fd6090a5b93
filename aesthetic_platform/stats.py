"""The one cluster bootstrap of the platform.

Samples that share a cluster (pairs of one prompt, seeds of one prompt) are not
independent, so confidence intervals resample whole clusters. ``statistic`` receives
one weight per sample — how many times its cluster was drawn — so any weighted
statistic (an accuracy, a ROC AUC with ``sample_weight``) plugs in unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


def cluster_bootstrap(
    statistic: Callable[[np.ndarray], float],
    clusters: np.ndarray,
    samples: int = BOOTSTRAP_SAMPLES,
    confidence: float = CONFIDENCE,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(weights)`` over cluster resamples; draws where it is not finite are skipped."""
    clusters = np.asarray(clusters)
    if clusters.size == 0:
        return float("nan"), float("nan")
    _, cluster_index = np.unique(clusters, return_inverse=True)
    n_clusters = int(cluster_index.max()) + 1
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(samples):
        drawn = np.bincount(rng.integers(0, n_clusters, size=n_clusters), minlength=n_clusters)
        value = statistic(drawn[cluster_index].astype(np.float64))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
