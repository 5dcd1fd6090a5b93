"""The evaluation report: does the student order pairs the way the teacher and people do?

Accuracy is measured on the teacher's held-out test split (per dimension, per aspect
ratio, against the teacher's margin) and on the human picks, each with a 95% cluster
bootstrap CI over prompts. Baselines: chance (50%), the current champion on the very
same pairs, and the heuristic judge on the human picks.

A dimension whose same-ratio CI does not clear chance gets a reason, read from three
measurements in this order: is the judge's within-prompt signal decisive and stable
(else there is little to learn), does the student order its own training pairs as the
judge does (if not, it underfits: it does not pick up what the judge rewards at this
scale, and more pairs of the same kind are unlikely to help), or does it fit them and not the
test pairs (overfit: more prompts will).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from aesthetic_platform.evaluation.best_of_n import BestOfN, best_of_n
from aesthetic_platform.evaluation.gate import BEST_OF_N, SAME_RATIO_HEADLINE
from aesthetic_platform.evaluation.stats import Accuracy, bootstrap_accuracy
from aesthetic_platform.model.predict import agreement, pair_logits, teacher_gaps
from aesthetic_platform.schemas import PAIR_KINDS, RATIOS, DimScores, HumanPreference, PreferencePair
from aesthetic_platform.stats import cluster_bootstrap

CHANCE = 0.5
MARGIN_BINS = 4
HEADLINE_DIMENSION = "total"
#: Below this share of decisive same-ratio pairs the judge barely separates seeds: little to learn.
MIN_DECISIVE_SHARE = 0.25
#: Below this same-seed-at-two-sizes correlation the judge's within-prompt differences are mostly noise.
MIN_SIZE_STABILITY = 0.5
#: A student that orders fewer than this share of its own training pairs as the judge does has not
#: learned the dimension's signal (it underfits); at or above it, chance on test pairs means overfitting.
FIT_ACCURACY = 0.75


@dataclass
class ModelAccuracy:
    per_dimension: dict[str, Accuracy]
    per_ratio: dict[str, Accuracy] = field(default_factory=dict)
    by_margin: list[dict[str, Any]] = field(default_factory=list)
    human: Accuracy | None = None
    per_kind: dict[str, dict[str, Accuracy]] = field(default_factory=dict)  # pair kind -> dimension -> accuracy
    per_ratio_pair: dict[str, Accuracy] = field(default_factory=dict)  # '1:1|16:9' -> accuracy on the headline
    best_of_n: dict[str, BestOfN] = field(default_factory=dict)  # dimension -> best-of-N on same-ratio groups

    def gate_metrics(self) -> dict[str, float]:
        """What the champion gate compares: every dimension, the same-ratio total and best-of-N on the headline."""
        metrics = {d: a.accuracy for d, a in self.per_dimension.items()}
        same = self.per_kind.get("same_ratio", {}).get(HEADLINE_DIMENSION)
        if same is not None and same.n:
            metrics[SAME_RATIO_HEADLINE] = same.accuracy
        best = self.best_of_n.get(HEADLINE_DIMENSION)
        if best is not None and best.hit.n:
            metrics[BEST_OF_N] = best.hit.accuracy
        return metrics

    def as_dict(self) -> dict[str, Any]:
        return {
            "per_dimension": {d: a.as_dict() for d, a in self.per_dimension.items()},
            "per_ratio": {r: a.as_dict() for r, a in self.per_ratio.items()},
            "per_kind": {k: {d: a.as_dict() for d, a in accs.items()} for k, accs in self.per_kind.items()},
            "per_ratio_pair": {r: a.as_dict() for r, a in self.per_ratio_pair.items()},
            "best_of_n": {d: b.as_dict() for d, b in self.best_of_n.items()},
            "by_margin": self.by_margin,
            "human": self.human.as_dict() if self.human else None,
        }


@dataclass
class EvalReport:
    dimensions: tuple[str, ...]
    tie_threshold: float
    test_pairs: int
    human_pairs: int
    model: ModelAccuracy
    champion: ModelAccuracy | None
    heuristic_human: Accuracy | None
    eval_set: str = ""  # digest of the frozen evaluation set the numbers come from
    teacher_signal: dict[str, dict[str, float]] = field(default_factory=dict)  # dimension -> same-ratio gap statistics
    train_fit: dict[str, Accuracy] = field(default_factory=dict)  # dimension -> accuracy on same-ratio training pairs
    train_fit_skipped: str = ""  # why train_fit is empty, when it is
    markdown: str = ""
    plots: dict[str, Path] = field(default_factory=dict)

    def headline(self) -> Accuracy:
        return self.model.per_dimension[HEADLINE_DIMENSION if HEADLINE_DIMENSION in self.model.per_dimension else self.dimensions[0]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "dimensions": list(self.dimensions), "tie_threshold": self.tie_threshold, "eval_set": self.eval_set,
            "test_pairs": self.test_pairs, "human_pairs": self.human_pairs, "chance": CHANCE,
            "model": self.model.as_dict(), "champion": self.champion.as_dict() if self.champion else None,
            "heuristic_human": self.heuristic_human.as_dict() if self.heuristic_human else None,
            "teacher_signal": self.teacher_signal,
            "train_fit": {d: a.as_dict() for d, a in self.train_fit.items()},
            "train_fit_skipped": self.train_fit_skipped,
            "at_chance": at_chance_reasons(self),
        }


def human_as_pairs(humans: Sequence[HumanPreference], dimensions: Sequence[str]) -> list[Any]:
    """Human picks in the pair shape the predictor reads (only the judged dimension is counted)."""
    return [
        SimpleNamespace(
            pair_id=h.pair_id, prompt=h.prompt, image_winner_path=h.winner_path, image_loser_path=h.loser_path,
            scores={d: DimScores(winner=1.0, loser=0.0) for d in dimensions},
        )
        for h in humans
    ]


def _accuracy_for(correct: np.ndarray, counted: np.ndarray, clusters: np.ndarray) -> Accuracy:
    return bootstrap_accuracy(correct[counted].astype(float), clusters[counted])


@dataclass(frozen=True)
class PairAgreement:
    """Student against judge on a list of pairs, [pairs, dims] each; the finer cuts of the report slice it."""

    winners: np.ndarray  # student logits of the judge's winners
    losers: np.ndarray
    gaps: np.ndarray  # judge's winner - loser score
    correct: np.ndarray
    counted: np.ndarray  # the judge's gap clears the tie threshold
    clusters: np.ndarray  # prompt hash per pair, for the bootstrap

    def accuracy(self, column: int, where: np.ndarray | None = None) -> Accuracy:
        counted = self.counted[:, column] if where is None else self.counted[:, column] & where
        return _accuracy_for(self.correct[:, column], counted, self.clusters)


def pair_agreement(model, pairs: Sequence[PreferencePair], tie_threshold: float, device="cpu") -> PairAgreement:
    winners, losers = pair_logits(model, pairs, device=device)
    gaps = teacher_gaps(pairs, tuple(model.dimensions))
    correct, counted = agreement(winners, losers, gaps, tie_threshold)
    return PairAgreement(winners, losers, gaps, correct, counted, np.array([p.prompt_hash for p in pairs]))


def train_fit(model, train_pairs: Sequence[PreferencePair], tie_threshold: float, limit: int, device="cpu") -> dict[str, Accuracy]:
    """Per dimension, how often the student orders same-ratio pairs it was trained on as the judge did: the
    underfit/overfit half of the at-chance diagnosis. At most ``limit`` pairs, chosen by pair id so the
    sample is the same for every model scored on the same split."""
    same = sorted((p for p in train_pairs if p.pair_kind == "same_ratio"), key=lambda p: hashlib.sha256(p.pair_id.encode()).hexdigest())
    if not same or limit <= 0:
        return {}
    scored = pair_agreement(model, same[:limit], tie_threshold, device)
    return {d: scored.accuracy(i) for i, d in enumerate(model.dimensions)}


def model_accuracy(
    model, pairs: Sequence[PreferencePair], humans: Sequence[HumanPreference], tie_threshold: float, device="cpu"
) -> ModelAccuracy:
    dims = tuple(model.dimensions)
    scored = pair_agreement(model, pairs, tie_threshold, device)
    per_dimension = {d: scored.accuracy(i) for i, d in enumerate(dims)}
    head = dims.index(HEADLINE_DIMENSION) if HEADLINE_DIMENSION in dims else 0
    per_ratio = {}
    for ratio in RATIOS:
        involved = np.array([ratio in (p.winner_ratio, p.loser_ratio) for p in pairs], dtype=bool)
        if involved.any():
            per_ratio[ratio] = scored.accuracy(head, involved)
    kinds = np.array([p.pair_kind for p in pairs])
    per_kind = {kind: {d: scored.accuracy(i, kinds == kind) for i, d in enumerate(dims)} for kind in PAIR_KINDS if (kinds == kind).any()}
    ratio_pairs = np.array([p.ratio_pair for p in pairs])
    per_ratio_pair = {rp: scored.accuracy(head, ratio_pairs == rp) for rp in sorted(set(ratio_pairs.tolist()), key=_ratio_pair_order)}
    by_margin = []
    counted = scored.counted[:, head]
    margins = np.abs(scored.gaps[:, head])
    if counted.sum() >= MARGIN_BINS:
        edges = np.quantile(margins[counted], np.linspace(0, 1, MARGIN_BINS + 1))
        for low, high in zip(edges[:-1], edges[1:], strict=True):
            acc = scored.accuracy(head, (margins >= low) & (margins <= high))
            by_margin.append({"margin_low": float(low), "margin_high": float(high), **acc.as_dict()})
    human = None
    if humans:
        human_pairs = human_as_pairs(humans, dims)
        hw, hl = pair_logits(model, human_pairs, device=device)
        columns = [dims.index(h.dimension) if h.dimension in dims else head for h in humans]
        rows = np.arange(len(humans))
        human = bootstrap_accuracy((hw[rows, columns] > hl[rows, columns]).astype(float), np.array([h.prompt_hash for h in humans]))
    best = best_of_n(pairs, scored.winners, scored.losers, dims, tie_threshold)
    return ModelAccuracy(per_dimension, per_ratio, by_margin, human, per_kind, per_ratio_pair, best)


def _ratio_pair_order(ratio_pair: str) -> tuple[int, ...]:
    """Same-ratio pairs first, each group in ``RATIOS`` order."""
    order = list(RATIOS)
    first, second = ratio_pair.split("|")
    return (first != second, order.index(first) if first in order else len(order), order.index(second) if second in order else len(order))


def teacher_signal(pairs: Sequence[PreferencePair], dimensions: Sequence[str], tie_threshold: float) -> dict[str, dict[str, float]]:
    """Per dimension on the same-ratio pairs: how often the teacher's gap clears the tie threshold, its median size,
    and how well a seed's standing among its siblings carries to its other size (``size_stability``)."""
    same = [p for p in pairs if p.pair_kind == "same_ratio"]
    signal = {}
    for dim in dimensions:
        gaps = np.abs(np.array([p.scores[dim].winner - p.scores[dim].loser for p in same if dim in p.scores], dtype=np.float64))
        signal[dim] = {
            "pairs": int(gaps.size),
            "decisive_share": float((gaps > tie_threshold).mean()) if gaps.size else float("nan"),
            "median_gap": float(np.median(gaps)) if gaps.size else float("nan"),
            **dict(zip(("size_stability", "size_stability_ci_low", "size_stability_ci_high"), size_stability(pairs, dim), strict=True)),
        }
    return signal


MIN_STABILITY_SEEDS = 3


def _seed_deviations(pairs: Sequence[PreferencePair], dim: str) -> tuple[np.ndarray, np.ndarray]:
    """[seeds, 2] deviations from the (prompt, ratio) group mean at each of a seed's two sizes, and the seeds' prompts."""
    scores: dict[str, tuple[str, float]] = {}  # image id -> (group, score)
    for pair in pairs:
        if dim in pair.scores:
            scores[pair.winner_id] = (f"{pair.prompt_hash}|{pair.winner_ratio}", pair.scores[dim].winner)
            scores[pair.loser_id] = (f"{pair.prompt_hash}|{pair.loser_ratio}", pair.scores[dim].loser)
    members: dict[str, list[float]] = defaultdict(list)
    for group, score in scores.values():
        members[group].append(score)
    means = {group: float(np.mean(values)) for group, values in members.items()}

    def deviation(image_id: str) -> float:
        group, score = scores[image_id]
        return score - means[group]

    seeds = [p for p in pairs if p.pair_kind == "cross_ratio" and dim in p.scores]
    deviations = np.array([(deviation(p.winner_id), deviation(p.loser_id)) for p in seeds], dtype=np.float64).reshape(-1, 2)
    return deviations, np.array([p.prompt_hash for p in seeds])


def weighted_correlation(first: np.ndarray, second: np.ndarray, weights: np.ndarray) -> float:
    """Pearson's r with a weight per sample (a bootstrap draw's counts); NaN when either side is constant."""
    total = weights.sum()
    if total <= 0:
        return float("nan")
    da, db = first - weights @ first / total, second - weights @ second / total
    spread = float(np.sqrt((weights @ (da * da)) * (weights @ (db * db))))
    return float(weights @ (da * db) / spread) if spread > 0 else float("nan")


def size_stability(pairs: Sequence[PreferencePair], dim: str) -> tuple[float, float, float]:
    """(r, CI low, CI high): correlation, over seeds judged at two ratios, of the seed's score minus its (prompt,
    ratio) group's mean at one ratio with the same at the other, with a bootstrap CI over prompts; NaN with fewer
    than ``MIN_STABILITY_SEEDS`` such seeds.

    A cross-ratio pair is one seed at two sizes. Near 1: the judge ranks a seed among its siblings
    the same way at both sizes, so the score is a property of the design that a student can learn.
    Near 0: the within-group differences the student is asked to learn are mostly noise."""
    deviations, prompts = _seed_deviations(pairs, dim)
    if len(deviations) < MIN_STABILITY_SEEDS:
        return float("nan"), float("nan"), float("nan")
    first, second = deviations.T
    r = weighted_correlation(first, second, np.ones(len(first)))
    if np.isnan(r):
        return r, r, r
    low, high = cluster_bootstrap(lambda weights: weighted_correlation(first, second, weights), prompts)
    return r, low, high


def at_chance_reasons(report: EvalReport) -> dict[str, str]:
    """For each dimension whose same-ratio test CI does not clear chance: why, with the numbers that say so.

    The teacher is checked first (a judge that barely separates seeds, or whose within-prompt
    differences do not carry from one size to the other, leaves nothing to learn), then the
    student's fit on its own training pairs (below ``FIT_ACCURACY`` it underfits; at or above it
    overfits). A missing measurement is said, not guessed."""
    reasons = {}
    for dim in report.dimensions:
        same = report.model.per_kind.get("same_ratio", {}).get(dim)
        if same is None or same.n == 0 or same.ci_low > CHANCE:
            continue
        head = f"same-ratio test pairs {_fmt(same)}: the CI does not clear chance."
        signal = report.teacher_signal.get(dim, {})
        decisive, stability = signal.get("decisive_share", float("nan")), signal.get("size_stability", float("nan"))
        fit = report.train_fit.get(dim)
        shown = "not measured (no seed judged at two sizes)" if np.isnan(stability) else f"{stability:.2f}"
        teacher = f"{decisive:.0%} of same-ratio pairs decisive, same seed at two sizes r = {shown}"
        if not np.isnan(decisive) and decisive < MIN_DECISIVE_SHARE:
            reasons[dim] = f"{head} The judge barely separates seeds here ({teacher}): little to learn."
        elif not np.isnan(stability) and stability < MIN_SIZE_STABILITY:
            reasons[dim] = f"{head} The judge's within-prompt differences are mostly noise ({teacher}): little to learn."
        elif fit is None or fit.n == 0:
            why = f" ({report.train_fit_skipped})" if report.train_fit_skipped else ""
            reasons[dim] = f"{head} The judge is consistent ({teacher}); the student's fit on its training pairs was not measured{why}."
        elif fit.accuracy < FIT_ACCURACY:
            reasons[dim] = (
                f"{head} The judge is consistent ({teacher}), but the student orders only {_fmt(fit)} of its own "
                f"same-ratio training pairs as the judge does (under {FIT_ACCURACY:.0%}): it underfits. The judge's signal here is "
                "too weak for this student to learn at this model and data scale; look at the student (its image tower, "
                "pretrained weights, training length) before adding pairs of the same kind."
            )
        else:
            reasons[dim] = (
                f"{head} The judge is consistent ({teacher}) and the student fits {_fmt(fit)} of its own same-ratio "
                "training pairs: it overfits, it learns the training prompts without generalising. More prompts are the remedy."
            )
    return reasons


def heuristic_accuracy_on_humans(humans: Sequence[HumanPreference], score_image: Callable[[str, str], dict[str, float]]) -> Accuracy | None:
    """How often the pixel heuristic agrees with people (on the dimension they judged)."""
    if not humans:
        return None
    correct = []
    for h in humans:
        winner, loser = score_image(h.winner_path, h.prompt), score_image(h.loser_path, h.prompt)
        dim = h.dimension if h.dimension in winner else HEADLINE_DIMENSION
        correct.append(float(winner[dim] > loser[dim]))
    return bootstrap_accuracy(np.array(correct), np.array([h.prompt_hash for h in humans]))


def _fmt(acc: Accuracy | None) -> str:
    if acc is None or acc.n == 0:
        return "–"
    return f"{acc.accuracy:.1%} [{acc.ci_low:.1%}, {acc.ci_high:.1%}] (n={acc.n})"


def render_markdown(report: EvalReport) -> str:
    lines = [
        "# Evaluation report",
        "",
        f"Evaluation set `{report.eval_set}`: {report.test_pairs} teacher pairs · human pairs: {report.human_pairs} · "
        f"tie threshold (the model's own): {report.tie_threshold} · "
        f"95% CIs from a bootstrap over prompts · chance = {CHANCE:.0%}",
        "",
        "## Pairwise accuracy on the teacher's test split",
        "",
        "| dimension | student | champion |",
        "| --- | --- | --- |",
    ]
    for dim in report.dimensions:
        champion = report.champion.per_dimension.get(dim) if report.champion else None
        lines.append(f"| {dim} | {_fmt(report.model.per_dimension[dim])} | {_fmt(champion)} |")
    lines += _pair_design_sections(report)
    lines += ["", f"## Per aspect ratio ({HEADLINE_DIMENSION}; a pair counts for both its images' ratios)", ""]
    lines += ["| ratio | student |", "| --- | --- |"]
    lines += [f"| {ratio} | {_fmt(acc)} |" for ratio, acc in report.model.per_ratio.items()]
    lines += ["", f"## Accuracy against the teacher's margin ({HEADLINE_DIMENSION})", "", "| margin | student |", "| --- | --- |"]
    lines += [
        f"| {b['margin_low']:.2f}–{b['margin_high']:.2f} | {b['accuracy']:.1%} [{b['ci_low']:.1%}, {b['ci_high']:.1%}] (n={b['n']}) |"
        for b in report.model.by_margin
    ]
    lines += ["", "## Human picks", ""]
    if report.human_pairs:
        lines += [
            "| model | accuracy |", "| --- | --- |",
            f"| student | {_fmt(report.model.human)} |",
            f"| champion | {_fmt(report.champion.human if report.champion else None)} |",
            f"| heuristic judge | {_fmt(report.heuristic_human)} |",
        ]
    else:
        lines.append("No human preferences yet (label some in `aesthetic workbench`).")
    return "\n".join(lines) + "\n"


def _pair_design_sections(report: EvalReport) -> list[str]:
    """Same-ratio vs cross-ratio accuracy, per ratio pair, best-of-N, and the teacher's signal within a prompt."""
    model = report.model
    if not model.per_kind:
        return []
    lines = [
        "", "## Same-ratio and cross-ratio pairs", "",
        "Same-ratio: two seeds of one prompt at one size (choosing among seeds). "
        "Cross-ratio: one seed of one prompt at two ratios (choosing a format).", "",
        "| dimension | same-ratio | cross-ratio | same-ratio CI above chance |", "| --- | --- | --- | --- |",
    ]
    for dim in report.dimensions:
        same, cross = model.per_kind.get("same_ratio", {}).get(dim), model.per_kind.get("cross_ratio", {}).get(dim)
        above = "–" if same is None or same.n == 0 else ("yes" if same.ci_low > CHANCE else "no")
        lines.append(f"| {dim} | {_fmt(same)} | {_fmt(cross)} | {above} |")
    lines += ["", f"## Per ratio pair ({HEADLINE_DIMENSION})", "", "| ratio pair | kind | student |", "| --- | --- | --- |"]
    for ratio_pair, acc in model.per_ratio_pair.items():
        first, second = ratio_pair.split("|")
        lines.append(f"| {ratio_pair} | {'same-ratio' if first == second else 'cross-ratio'} | {_fmt(acc)} |")
    if model.best_of_n:
        lines += [
            "", "## Best of N", "",
            "Among the N same-ratio candidates of one (prompt, ratio) with every pair judged: how often the student's top pick "
            "is the judge's (the candidate that beats all others on that dimension), against random choice (1/N).", "",
            "| dimension | student picks the judge's top | random choice | lift, 95% CI | groups (mean N) | beats random |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for dim, best in model.best_of_n.items():
            if best.hit.n == 0:
                lines.append(f"| {dim} | – | – | – | 0 | – |")
                continue
            lines.append(
                f"| {dim} | {_fmt(best.hit)} | {best.chance:.1%} | [{best.lift_ci_low:+.1%}, {best.lift_ci_high:+.1%}] "
                f"| {best.hit.n} ({best.mean_n:.1f}) | {'yes' if best.beats_chance else 'no'} |"
            )
    if report.teacher_signal:
        lines += [
            "", "## The teacher's signal within a prompt (same-ratio pairs)", "",
            f"How often the judge's score gap between two seeds at one size clears the tie threshold ({report.tie_threshold}), "
            "and its median size: a dimension the judge barely separates within a prompt gives the student little to learn. "
            "Same seed at two sizes: the correlation, over seeds judged at two ratios, of the seed's score minus its "
            "(prompt, ratio) group's mean at one size with the same at the other, 95% CI over prompts; near 1 the judge's within-prompt "
            "differences are a property of the design, near 0 they are mostly noise.", "",
            "Student on its training pairs: how often the student orders same-ratio pairs it was trained on as the judge "
            f"did. Under {FIT_ACCURACY:.0%} it underfits that dimension; well above its test accuracy, it overfits."
            + (f" Not measured: {report.train_fit_skipped}." if report.train_fit_skipped else ""), "",
            "| dimension | decisive pairs | median gap | same seed at two sizes (r) | student on its training pairs |",
            "| --- | --- | --- | --- | --- |",
        ]
        for dim, sig in report.teacher_signal.items():
            stability = sig.get("size_stability", float("nan"))
            low, high = sig.get("size_stability_ci_low", float("nan")), sig.get("size_stability_ci_high", float("nan"))
            shown = "–" if np.isnan(stability) else f"{stability:.2f}" + ("" if np.isnan(low) else f" [{low:.2f}, {high:.2f}]")
            fit = _fmt(report.train_fit.get(dim))
            lines.append(f"| {dim} | {sig['decisive_share']:.1%} of {sig['pairs']} | {sig['median_gap']:.3f} | {shown} | {fit} |")
    reasons = at_chance_reasons(report)
    if reasons:
        lines += ["", "## Dimensions at chance on same-ratio pairs: why", ""]
        lines += [f"- **{dim}**: {reason}" for dim, reason in reasons.items()]
    return lines


def render_plots(report: EvalReport, folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}
    dims = list(report.dimensions)
    accs = [report.model.per_dimension[d] for d in dims]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(dims))
    errors = [[a.accuracy - a.ci_low for a in accs], [a.ci_high - a.accuracy for a in accs]]
    ax.bar(x, [a.accuracy for a in accs], yerr=errors, capsize=4, label="student")
    if report.champion:
        champ = [report.champion.per_dimension[d] for d in dims]
        ax.scatter(x, [a.accuracy for a in champ], color="black", marker="_", s=400, label="champion", zorder=3)
    ax.axhline(CHANCE, color="grey", linestyle="--", label="chance")
    ax.set_xticks(x, dims, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("pairwise accuracy")
    ax.legend(loc="lower right")
    fig.tight_layout()
    plots["per_dimension"] = folder / "accuracy_per_dimension.png"
    fig.savefig(plots["per_dimension"], dpi=100)
    plt.close(fig)
    if report.model.by_margin:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        mids = [(b["margin_low"] + b["margin_high"]) / 2 for b in report.model.by_margin]
        bins = report.model.by_margin
        errors = [[b["accuracy"] - b["ci_low"] for b in bins], [b["ci_high"] - b["accuracy"] for b in bins]]
        ax.errorbar(mids, [b["accuracy"] for b in bins], yerr=errors, marker="o", capsize=4)
        ax.axhline(CHANCE, color="grey", linestyle="--")
        ax.set_xlabel(f"teacher margin on {HEADLINE_DIMENSION}")
        ax.set_ylabel("pairwise accuracy")
        ax.set_ylim(0, 1)
        fig.tight_layout()
        plots["by_margin"] = folder / "accuracy_by_margin.png"
        fig.savefig(plots["by_margin"], dpi=100)
        plt.close(fig)
    return plots
