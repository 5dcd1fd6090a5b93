"""Golden vs bad seeds, compared through the initial latent noise each seed draws.

The noise is regenerated exactly as ``DiffusersGenerator`` makes the pipeline draw
it: one CPU ``torch.Generator`` per image seeded with the image seed, and
``torch.randn`` of the latent shape in float32 (a bf16 pipeline rounds the very same
draws). FLUX then packs 2x2 patches; packing only reorders values, so statistics are
computed on the unpacked ``(1, C, H/8, W/8)`` tensor.

Three results, all honest about sample size:

* summary statistics per noise feature (golden mean, bad mean, effect size,
  Mann-Whitney p);
* a t-SNE map of low-frequency noise (the part of the noise that survives into
  composition) coloured golden / bad;
* a seed-selector baseline: logistic regression on the noise features, scored by
  AUC on prompts it never saw (grouped folds), with a cluster-bootstrap CI and a
  permutation p-value (labels shuffled within prompts). When the p-value is not
  small the verdict says *chance* — that is the expected answer for i.i.d.
  Gaussian noise and a generator that does not read it the way the features do.

Selections made with the poster renderer carry no latent geometry: their seeds are
analysed with the FLUX.1 convention, and the report says that this noise is not what
drew those images.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import write_json, write_text, write_with
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.stats import cluster_bootstrap
from aesthetic_platform.workbench.selections import Selection, active_selections, read_log, workbench_dir

FLUX_LATENT_CHANNELS = 16
FLUX_VAE_SCALE = 8
FLUX_PACK = 2  # FLUX latents are packed in 2x2 patches, so latent sides are even
LOW_FREQUENCY_GRID = 4
EMBEDDING_GRID = 8
TAIL_SIGMA = 2.0
#: the scalar noise statistics, in the order the selector sees them
FEATURES = (
    "mean_z", "std", "skewness", "excess_kurtosis", "tail_mass",
    "lag1_corr_x", "lag1_corr_y", "low_freq_energy", "channel_mean_spread",
)

REPORT_FILE = "golden_noise_report.json"
REPORT_MARKDOWN = "golden_noise_report.md"
PLOT_FILE = "golden_noise_tsne.png"


@dataclass(frozen=True)
class LatentGeometry:
    channels: int = FLUX_LATENT_CHANNELS
    vae_scale_factor: int = FLUX_VAE_SCALE
    layout: str = "flux"

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> tuple[LatentGeometry, bool]:
        """The geometry a selection was generated with, and whether the generator really drew that noise."""
        if "latent_channels" in params:
            return cls(int(params["latent_channels"]), int(params["vae_scale_factor"]), str(params["latent_layout"])), True
        return cls(), False

    def shape(self, width: int, height: int) -> tuple[int, int, int, int]:
        if self.layout == "flux":
            # the pipeline's prepare_latents: 2 * (side // (vae_scale * 2))
            unit = self.vae_scale_factor * FLUX_PACK
            return (1, self.channels, FLUX_PACK * (height // unit), FLUX_PACK * (width // unit))
        return (1, self.channels, height // self.vae_scale_factor, width // self.vae_scale_factor)


def initial_noise(seed: int, width: int, height: int, geometry: LatentGeometry = LatentGeometry()) -> torch.Tensor:
    """The unpacked initial latent noise the pipeline starts from for this seed and size."""
    return torch.randn(geometry.shape(width, height), generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)


def _pooled(noise: torch.Tensor, grid: int) -> torch.Tensor:
    """Block means scaled by sqrt(block size): i.i.d. N(0,1) noise stays N(0,1) at any image size."""
    _, _, h, w = noise.shape
    pooled = torch.nn.functional.adaptive_avg_pool2d(noise, (min(grid, h), min(grid, w)))
    block = (h * w) / (pooled.shape[-1] * pooled.shape[-2])
    return pooled * math.sqrt(block)


def noise_features(noise: torch.Tensor) -> dict[str, float]:
    """Size-independent statistics; under i.i.d. N(0,1) each has a known null value (0 or 1)."""
    x = noise[0].double()
    flat = x.flatten()
    centred = flat - flat.mean()
    std = float(centred.std())
    channel_means = x.mean(dim=(1, 2)) * math.sqrt(x.shape[1] * x.shape[2])
    return {
        "mean_z": float(flat.mean() * math.sqrt(flat.numel())),
        "std": std,
        "skewness": float((centred**3).mean() / std**3),
        "excess_kurtosis": float((centred**4).mean() / std**4 - 3.0),
        "tail_mass": float((flat.abs() > TAIL_SIGMA).double().mean()),
        "lag1_corr_x": float((x[:, :, 1:] * x[:, :, :-1]).mean() / x.pow(2).mean()),
        "lag1_corr_y": float((x[:, 1:, :] * x[:, :-1, :]).mean() / x.pow(2).mean()),
        "low_freq_energy": float(_pooled(noise.double(), LOW_FREQUENCY_GRID).pow(2).mean()),
        "channel_mean_spread": float(channel_means.std()),
    }




@dataclass(frozen=True)
class NoiseSample:
    prompt_id: str
    seed: int
    golden: bool
    annotator: str
    generator: str
    pipeline_noise: bool
    features: dict[str, float]
    embedding: np.ndarray = field(repr=False)


def collect_samples(selections: list[Selection]) -> list[NoiseSample]:
    """One sample per judged image (golden = 1, bad = 0), its noise regenerated from the seed."""
    samples: list[NoiseSample] = []
    for selection in selections:
        geometry, real = LatentGeometry.from_params(selection.params)
        golden = set(selection.golden_seeds)
        for seed in [*selection.golden_seeds, *selection.bad_seeds]:
            noise = initial_noise(seed, selection.width, selection.height, geometry)
            samples.append(
                NoiseSample(
                    prompt_id=selection.prompt_id, seed=seed, golden=seed in golden, annotator=selection.annotator,
                    generator=selection.generator, pipeline_noise=real, features=noise_features(noise),
                    embedding=_pooled(noise, EMBEDDING_GRID).flatten().numpy(),
                )
            )
    return samples


def summary_statistics(samples: list[NoiseSample]) -> list[dict[str, Any]]:
    """Per feature: golden vs bad means, Cohen's d and a two-sided Mann-Whitney p-value."""
    from scipy.stats import mannwhitneyu

    rows = []
    for name in FEATURES:
        golden = np.array([s.features[name] for s in samples if s.golden])
        bad = np.array([s.features[name] for s in samples if not s.golden])
        row: dict[str, Any] = {"feature": name, "golden_n": int(golden.size), "bad_n": int(bad.size)}
        row["golden_mean"] = float(golden.mean()) if golden.size else None
        row["bad_mean"] = float(bad.mean()) if bad.size else None
        if golden.size >= 2 and bad.size >= 2:
            pooled = math.sqrt(((golden.size - 1) * golden.var(ddof=1) + (bad.size - 1) * bad.var(ddof=1)) / (golden.size + bad.size - 2))
            row["cohens_d"] = float((golden.mean() - bad.mean()) / pooled) if pooled > 0 else 0.0
            row["mann_whitney_p"] = float(mannwhitneyu(golden, bad, alternative="two-sided").pvalue)
        else:
            row["cohens_d"] = row["mann_whitney_p"] = None
        rows.append(row)
    return rows


class SelectorConfig(BaseModel):
    """How the seed-selector baseline is evaluated."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_folds: int = Field(default=5, ge=2, le=20, description="Grouped folds (by prompt) for held-out AUC.")
    min_prompts: int = Field(default=4, ge=2, description="Fewest prompts with picks before the selector is evaluated.")
    min_per_class: int = Field(default=4, ge=1, description="Fewest golden and bad seeds each before the selector is evaluated.")
    permutations: int = Field(default=200, ge=10, le=10_000, description="Label permutations for the selector's p-value.")
    bootstrap: int = Field(default=1000, ge=100, le=100_000, description="Prompt-cluster bootstrap resamples for the AUC CI.")
    alpha: float = Field(default=0.05, gt=0, lt=1, description="Above chance only when the permutation p is below this.")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="Level of the AUC confidence interval.")
    random_state: int = Field(default=0, description="Seed of permutations and resamples.")


def _out_of_fold_scores(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int) -> np.ndarray:
    """Predicted golden probability of each sample by a model that never saw its prompt."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    scores = np.empty(len(y))
    for train, test in GroupKFold(n_splits=folds).split(x, y, groups):
        if len(set(y[train])) < 2:  # a fold whose training prompts are all one class: predict the base rate
            scores[test] = float(y[train].mean())
            continue
        model = make_pipeline(StandardScaler(), LogisticRegression(solver="liblinear"))
        model.fit(x[train], y[train])
        scores[test] = model.predict_proba(x[test])[:, 1]
    return scores


def _permute_within(y: np.ndarray, groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    permuted = y.copy()
    for group in np.unique(groups):
        index = np.flatnonzero(groups == group)
        permuted[index] = y[rng.permutation(index)]
    return permuted


def _cluster_bootstrap_auc(y: np.ndarray, scores: np.ndarray, groups: np.ndarray, config: SelectorConfig) -> tuple[float, float]:
    from sklearn.metrics import roc_auc_score

    def auc(weights: np.ndarray) -> float:
        drawn = weights > 0
        if len(set(y[drawn])) < 2:  # a resample with one class has no AUC
            return float("nan")
        return float(roc_auc_score(y, scores, sample_weight=weights))

    return cluster_bootstrap(auc, groups, config.bootstrap, config.confidence, config.random_state)


def seed_selector_baseline(samples: list[NoiseSample], config: SelectorConfig = SelectorConfig()) -> dict[str, Any]:
    """Can noise statistics tell golden seeds from bad ones on unseen prompts? AUC, CI, permutation p, verdict."""
    from sklearn.metrics import roc_auc_score

    y = np.array([int(s.golden) for s in samples])
    groups = np.array([s.prompt_id for s in samples])
    n_prompts, n_golden = len(set(groups)), int(y.sum())
    counts = {"samples": len(samples), "prompts": n_prompts, "golden": n_golden, "bad": len(samples) - n_golden}
    if n_prompts < config.min_prompts or min(n_golden, len(samples) - n_golden) < config.min_per_class:
        return {
            **counts, "status": "insufficient data", "verdict": "not evaluated",
            "reason": f"needs at least {config.min_prompts} judged prompts and {config.min_per_class} golden and bad images each",
        }
    x = np.array([[s.features[name] for name in FEATURES] for s in samples])
    folds = min(config.max_folds, n_prompts)
    scores = _out_of_fold_scores(x, y, groups, folds)
    auc = float(roc_auc_score(y, scores))
    rng = np.random.default_rng(config.random_state)
    null = np.array([
        roc_auc_score(permuted, _out_of_fold_scores(x, permuted, groups, folds))
        for permuted in (_permute_within(y, groups, rng) for _ in range(config.permutations))
    ])
    p_value = float((1 + np.sum(null >= auc)) / (1 + config.permutations))
    ci_low, ci_high = _cluster_bootstrap_auc(y, scores, groups, config)
    above = p_value < config.alpha and auc > 0.5
    return {
        **counts,
        "status": "evaluated",
        "model": "logistic regression on noise features",
        "features": list(FEATURES),
        "folds": folds,
        "auc": auc,
        "auc_ci": [ci_low, ci_high],
        "confidence": config.confidence,
        "permutation_p": p_value,
        "permutations": config.permutations,
        "null_auc_mean": float(null.mean()),
        "verdict": "above chance" if above else "chance",
        "interpretation": (
            f"held-out-prompt AUC {auc:.3f} [{ci_low:.3f}, {ci_high:.3f}], permutation p = {p_value:.3f}: "
            + (
                "noise statistics carry signal about golden seeds"
                if above
                else "chance level; these noise statistics do not predict golden seeds"
            )
        ),
    }


def tsne_plot(samples: list[NoiseSample], target: Path, random_state: int = 0) -> dict[str, Any]:
    """2-D t-SNE of low-frequency noise (majority latent geometry only), golden vs bad, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    width = Counter(s.embedding.size for s in samples).most_common(1)[0][0] if samples else 0
    used = [s for s in samples if s.embedding.size == width]
    min_points = 5
    if len(used) < min_points:
        return {"status": "insufficient data", "points": len(used), "reason": f"t-SNE needs at least {min_points} images"}
    x = np.stack([s.embedding for s in used])
    x = PCA(n_components=min(50, len(used) - 1, x.shape[1]), random_state=random_state).fit_transform(x)
    perplexity = float(min(30.0, (len(used) - 1) / 3))
    xy = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state).fit_transform(x)
    golden = np.array([s.golden for s in used])
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ax.scatter(xy[~golden, 0], xy[~golden, 1], s=18, c="#8a8f98", label=f"bad ({int((~golden).sum())})", alpha=0.8)
    ax.scatter(xy[golden, 0], xy[golden, 1], s=28, c="#c8961e", label=f"golden ({int(golden.sum())})", edgecolors="k", linewidths=0.4)
    ax.set_title("t-SNE of initial latent noise (low-frequency 8x8 per channel)")
    ax.legend(loc="best")
    fig.tight_layout()
    write_with(target, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return {
        "status": "plotted", "points": len(used), "excluded_other_geometry": len(samples) - len(used),
        "perplexity": perplexity, "path": str(target),
    }


def analysis_dir(root: DataRoot) -> Path:
    return workbench_dir(root) / "analysis"


def _markdown(report: dict[str, Any]) -> str:
    selector = report["seed_selector"]
    lines = [
        "# Golden vs bad seeds: initial latent noise",
        "",
        f"{report['selections']} selections, {report['samples']} judged images over {report['prompts']} prompts "
        f"({report['golden']} golden, {report['bad']} bad).",
        "",
        f"Noise drawn by the generator itself for {report['pipeline_noise_samples']} images; the rest (poster renderer) "
        "use the FLUX.1 convention, which did not draw those images.",
        "",
        "## Seed selector (held-out prompts)",
        "",
        selector.get("interpretation") or f"{selector['status']}: {selector.get('reason', '')}",
        "",
        "## Noise features, golden vs bad",
        "",
        "| feature | golden mean | bad mean | Cohen's d | Mann-Whitney p |",
        "| --- | --- | --- | --- | --- |",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    for row in report["summary"]:
        cells = [fmt(row[key]) for key in ("golden_mean", "bad_mean", "cohens_d", "mann_whitney_p")]
        lines.append(f"| {row['feature']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def analyse_golden_noise(root: DataRoot, config: SelectorConfig = SelectorConfig()) -> dict[str, Any]:
    """Run the whole analysis on the selections log; write report JSON, Markdown and the t-SNE PNG."""
    selections = active_selections(read_log(root))
    samples = collect_samples(selections)
    folder = analysis_dir(root)
    golden = sum(s.golden for s in samples)
    report: dict[str, Any] = {
        "selections": len(selections), "samples": len(samples), "prompts": len({s.prompt_id for s in samples}),
        "golden": golden, "bad": len(samples) - golden, "annotators": sorted({s.annotator for s in samples}),
        "pipeline_noise_samples": sum(s.pipeline_noise for s in samples),
        "summary": summary_statistics(samples),
        "seed_selector": {**seed_selector_baseline(samples, config), "config": config.model_dump(include=set(SelectorConfig.model_fields))},
        "tsne": tsne_plot(samples, folder / PLOT_FILE, config.random_state),
    }
    report["report_path"] = str(write_json(folder / REPORT_FILE, report))
    report["markdown_path"] = str(write_text(folder / REPORT_MARKDOWN, _markdown(report)))
    return report
