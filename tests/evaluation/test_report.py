import datetime as dt

import numpy as np
import pytest

from aesthetic_platform.evaluation.gate import GateConfig, decide
from aesthetic_platform.evaluation.report import (
    EvalReport,
    ModelAccuracy,
    model_accuracy,
    render_markdown,
    render_plots,
    teacher_signal,
)
from aesthetic_platform.evaluation.stats import Accuracy, bootstrap_accuracy
from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.schemas import HumanPreference
from tests.fixtures.pairs import write_synthetic_pairs


def test_bootstrap_ci_covers_the_mean_and_clusters_widen_it():
    rng = np.random.default_rng(0)
    correct = rng.random(400) < 0.7
    flat = bootstrap_accuracy(correct)
    assert flat.ci_low < flat.accuracy < flat.ci_high
    assert flat.ci_high - flat.ci_low < 0.12
    # 10 prompts whose pairs all agree or all disagree: far less information than 400 pairs
    clusters = np.repeat(np.arange(10), 40)
    lumpy = np.repeat(rng.random(10) < 0.7, 40)
    assert (bootstrap_accuracy(lumpy, clusters).ci_high - bootstrap_accuracy(lumpy, clusters).ci_low) > 3 * (flat.ci_high - flat.ci_low)
    assert bootstrap_accuracy(np.array([])).n == 0


def _acc(value: float) -> Accuracy:
    return Accuracy(value, value - 0.05, value + 0.05, 100)


def _report(new: float, champion: float | None) -> EvalReport:
    dims = ("total", "color")
    make = lambda v: ModelAccuracy({d: _acc(v) for d in dims})  # noqa: E731
    return EvalReport(dims, 0.5, 100, 0, make(new), make(champion) if champion is not None else None, None)


def test_champion_check():
    config = GateConfig(total_tolerance=0.02)
    assert decide({"total": 0.6}, None, {}, config).passed
    assert decide({"total": 0.69}, {"total": 0.70}, {}, config).passed
    decision = decide({"total": 0.60}, {"total": 0.70}, {}, config)
    assert not decision.passed and "regresses below" in decision.summary


def test_report_on_teacher_and_human_pairs(data_root, tmp_path):
    pairs = write_synthetic_pairs(data_root, pairs=24)
    humans = [
        HumanPreference(
            pair_id=f"h{i}", prompt_id="p", prompt=p.prompt, prompt_hash=p.prompt_hash, winner_path=p.image_winner_path,
            loser_path=p.image_loser_path, dimension="total", annotator="ann", created_at=dt.datetime.now(dt.UTC),
        )
        for i, p in enumerate(pairs[:6])
    ]
    model = AestheticScorer(named_config("tiny")).eval()
    accuracy = model_accuracy(model, pairs, humans, tie_threshold=0.5)
    assert set(accuracy.per_dimension) == set(model.dimensions)
    assert set(accuracy.per_ratio) == {"1:1", "16:9", "3:4"}
    assert accuracy.human is not None and accuracy.human.n == 6
    assert accuracy.by_margin and sum(b["n"] for b in accuracy.by_margin) >= accuracy.per_dimension["total"].n
    # same-ratio and cross-ratio pairs apart, per ratio pair, and best-of-N on the same-ratio groups
    same = [p for p in pairs if p.pair_kind == "same_ratio"]
    assert set(accuracy.per_kind) == {"same_ratio", "cross_ratio"}
    assert accuracy.per_kind["same_ratio"]["total"].n == len(same) and accuracy.per_kind["cross_ratio"]["total"].n == len(pairs) - len(same)
    assert set(accuracy.per_ratio_pair) == {p.ratio_pair for p in pairs} and list(accuracy.per_ratio_pair)[0] == "1:1|1:1"
    assert accuracy.best_of_n["total"].hit.n == len(same) and accuracy.best_of_n["total"].chance == 0.5  # one pair per prompt: N = 2
    metrics = accuracy.gate_metrics()
    assert set(metrics) == set(model.dimensions) | {"same_ratio.total", "best_of_n"}
    assert metrics["best_of_n"] == accuracy.best_of_n["total"].hit.accuracy
    signal = teacher_signal(pairs, model.dimensions, 0.5)
    assert signal["total"]["pairs"] == len(same) and signal["total"]["decisive_share"] == 1.0
    report = EvalReport(model.dimensions, 0.5, len(pairs), len(humans), accuracy, None, None, teacher_signal=signal)
    text = render_markdown(report)
    assert "## Human picks" in text and "| total |" in text and "95% CIs" in text
    for section in ("## Same-ratio and cross-ratio pairs", "## Per ratio pair (total)", "## Best of N", "## The teacher's signal"):
        assert section in text
    assert "| same seed at two sizes (r) |" in text.split("## The teacher's signal")[1]
    assert "| 1:1|16:9 | cross-ratio |" in text and report.as_dict()["model"]["best_of_n"]["total"]["chance"] == 0.5
    plots = render_plots(report, tmp_path / "plots")
    assert all(path.stat().st_size > 1000 for path in plots.values())


def test_human_dimension_outside_the_model_falls_back_to_total(data_root):
    pairs = write_synthetic_pairs(data_root, pairs=6)
    human = HumanPreference(
        pair_id="h", prompt_id="p", prompt="x", prompt_hash="h", winner_path=pairs[0].image_winner_path,
        loser_path=pairs[0].image_loser_path, dimension="mood", annotator="a", created_at=dt.datetime.now(dt.UTC),
    )
    model = AestheticScorer(named_config("tiny")).eval()
    assert model_accuracy(model, pairs, [human], 0.5).human.n == 1


@pytest.mark.slow
def test_the_report_uses_the_tie_threshold_the_model_was_trained_with(data_root):
    """A model trained with a non-default tie threshold is scored with it: the same pairs count as ties in training and evaluation."""
    import json

    from aesthetic_platform.evaluation.run import EvalConfig, evaluate
    from aesthetic_platform.model.loss import RankingLossConfig
    from aesthetic_platform.tracking import TrainedModel
    from aesthetic_platform.training.config import TrainConfig
    from aesthetic_platform.training.data import load_pair_splits
    from aesthetic_platform.training.loop import train

    tie = 3.0  # synthetic teacher gaps span about 1.2-5.4: some pairs are ties at 3.0, none at the default 0.5
    assert tie != RankingLossConfig().tie_threshold
    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"), root=data_root)
    config = TrainConfig(epochs=1, batch_size=4, max_steps=1, loss=RankingLossConfig(tie_threshold=tie))
    result = train(config, splits.train, [], data_root.models / "runs")
    trained = TrainedModel(data_root.relative(result.model_dir), "run", "0", "aesthetic-scorer", "1", result.run_key)

    outcome = evaluate(data_root, trained, EvalConfig())
    gaps = [p.scores["total"].winner - p.scores["total"].loser for p in outcome.eval_set.pairs]
    decisive = sum(abs(gap) > tie for gap in gaps)
    assert 0 < decisive < len(gaps)  # the threshold changes which pairs count on this set
    assert outcome.report.tie_threshold == tie
    assert outcome.report.model.per_dimension["total"].n == decisive  # scored with it, not only printed
    assert json.loads((outcome.report_dir / "report.json").read_text())["tie_threshold"] == tie


def _seed_pairs(stable: bool, prompts: int = 8, seeds: int = 3) -> list:
    """Each prompt: ``seeds`` seeds at 1:1 and 16:9; every same-ratio pair and each seed at its two sizes.

    ``stable``: a seed's score is its design quality at both sizes; otherwise a fresh draw per image."""
    from aesthetic_platform.schemas import PreferencePair

    rng = np.random.default_rng(0)
    pairs = []
    for prompt in range(prompts):
        quality = rng.normal(5, 1, seeds)
        score = {(s, r): quality[s] if stable else rng.normal(5, 1) for s in range(seeds) for r in ("1:1", "16:9")}
        images = [(s, r) for s in range(seeds) for r in ("1:1", "16:9")]
        comparisons = [(a, b) for a in images for b in images if a < b and (a[1] == b[1] or a[0] == b[0])]
        for a, b in comparisons:
            winner, loser = (a, b) if score[a] >= score[b] else (b, a)
            pairs.append(PreferencePair(
                pair_id=f"{prompt}-{a}-{b}", batch="b", prompt_id=f"p{prompt}", prompt="x", prompt_hash=f"h{prompt}",
                winner_id=f"{prompt}-{winner}", loser_id=f"{prompt}-{loser}", image_winner_path="w.png", image_loser_path="l.png",
                winner_ratio=winner[1], loser_ratio=loser[1],
                scores={"total": {"winner": score[winner], "loser": score[loser]}},
                judge_model="j", judge_prompt_version="v", consistent=True, split="test",
            ))
    return pairs


def test_size_stability_tells_a_design_property_from_noise():
    from aesthetic_platform.evaluation.report import size_stability

    stable, noisy = _seed_pairs(stable=True), _seed_pairs(stable=False)
    assert {p.pair_kind for p in stable} == {"same_ratio", "cross_ratio"}
    assert size_stability(stable, "total") == pytest.approx((1.0, 1.0, 1.0))
    r, low, high = size_stability(noisy, "total")
    assert abs(r) < 0.5 and low < r < high and low < 0 < high  # a CI over 8 prompts: noise is not told from zero
    assert all(np.isnan(size_stability([p for p in stable if p.pair_kind == "same_ratio"], "total")))  # no seed at two sizes
    signal = teacher_signal(stable, ("total",), 0.5)["total"]
    assert signal["size_stability"] == signal["size_stability_ci_low"] == pytest.approx(1.0)


def test_weighted_correlation_is_pearson_on_repeated_samples():
    from aesthetic_platform.evaluation.report import weighted_correlation

    rng = np.random.default_rng(1)
    a, b = rng.normal(size=20), rng.normal(size=20)
    weights = rng.integers(0, 3, size=20).astype(float)
    repeated = np.repeat(np.arange(20), weights.astype(int))
    assert weighted_correlation(a, b, weights) == pytest.approx(np.corrcoef(a[repeated], b[repeated])[0, 1])
    assert np.isnan(weighted_correlation(np.ones(20), b, np.ones(20)))


def _diagnosed(same_ratio: Accuracy, signal: dict[str, float], fit: Accuracy | None) -> str | None:
    from aesthetic_platform.evaluation.report import at_chance_reasons

    model = ModelAccuracy({"style_fit": same_ratio}, per_kind={"same_ratio": {"style_fit": same_ratio}})
    report = EvalReport(
        ("style_fit",), 0.5, 100, 0, model, None, None,
        teacher_signal={"style_fit": {"pairs": 100, "median_gap": 0.8, **signal}},
        train_fit={"style_fit": fit} if fit else {},
    )
    reason = at_chance_reasons(report).get("style_fit")
    text = render_markdown(report)
    assert (reason is not None) == ("## Dimensions at chance on same-ratio pairs: why" in text)
    assert report.as_dict()["at_chance"] == ({"style_fit": reason} if reason else {})
    return reason


def test_a_dimension_at_chance_is_given_the_reason_its_numbers_show():
    """Teacher first (indecisive, then unstable), then the student's fit on its own training pairs (under, over)."""
    at_chance, above = Accuracy(0.54, 0.47, 0.61, 300), Accuracy(0.64, 0.57, 0.70, 300)
    stable = {"decisive_share": 0.72, "size_stability": 0.99}
    underfit, overfit = Accuracy(0.65, 0.61, 0.69, 2000), Accuracy(0.93, 0.91, 0.95, 2000)

    assert _diagnosed(above, stable, underfit) is None  # only dimensions whose CI reaches chance are explained
    assert "barely separates" in _diagnosed(at_chance, {"decisive_share": 0.1, "size_stability": 0.99}, underfit)
    noisy = _diagnosed(at_chance, {"decisive_share": 0.72, "size_stability": 0.1}, overfit)
    assert "mostly noise" in noisy and "r = 0.10" in noisy
    under = _diagnosed(at_chance, stable, underfit)
    assert "underfits" in under and "65.0% [61.0%, 69.0%]" in under and "72% of same-ratio pairs decisive" in under
    assert "overfits" in _diagnosed(at_chance, stable, overfit)
    assert "not measured" in _diagnosed(at_chance, stable, None)
    unmeasured = _diagnosed(at_chance, {"decisive_share": 0.72, "size_stability": float("nan")}, underfit)
    assert "r = not measured" in unmeasured and "nan" not in unmeasured and "underfits" in unmeasured


@pytest.mark.slow
def test_evaluation_scores_the_student_on_its_own_training_pairs(data_root):
    """The train fit comes from the pairs training uses: same-ratio, train split, the evaluation set's prompts held out."""
    import json

    from aesthetic_platform.evaluation.run import EvalConfig, evaluate
    from aesthetic_platform.tracking import TrainedModel
    from aesthetic_platform.training.config import TrainConfig
    from aesthetic_platform.training.data import load_pair_splits
    from aesthetic_platform.training.loop import train

    pairs = write_synthetic_pairs(data_root, pairs=36)
    splits = load_pair_splits(data_root.table("preference_pairs"), root=data_root)
    result = train(TrainConfig(epochs=1, batch_size=4, max_steps=1), splits.train, [], data_root.models / "runs")
    trained = TrainedModel(data_root.relative(result.model_dir), "run", "0", "aesthetic-scorer", "1", result.run_key)

    outcome = evaluate(data_root, trained, EvalConfig())
    train_same = [p for p in pairs if p.split == "train" and p.pair_kind == "same_ratio"]
    assert train_same and outcome.report.train_fit["total"].n == len(train_same)
    assert set(outcome.report.train_fit) == set(outcome.report.dimensions)
    written = json.loads((outcome.report_dir / "report.json").read_text())
    assert written["train_fit"]["total"]["n"] == len(train_same) and "at_chance" in written
    assert "| student on its training pairs |" in outcome.report.markdown

    capped = evaluate(data_root, trained, EvalConfig(train_fit_pairs=2))
    assert capped.report.train_fit["total"].n <= 2
    assert evaluate(data_root, trained, EvalConfig(train_fit_pairs=0)).report.train_fit == {}

    # a checkpoint from a newer version, whose training.json has knobs this one does not know, still evaluates
    training_json = result.model_dir / "training.json"
    saved = training_json.read_text()
    training_json.write_text(json.dumps({**json.loads(saved), "knob_from_a_newer_version": 1}))
    newer = evaluate(data_root, trained, EvalConfig())
    assert newer.report.train_fit == {} and "does not validate" in newer.report.train_fit_skipped
    training_json.write_text(saved)

    # pairs the model never trained on are not called its training pairs: the report says why it has no fit
    write_synthetic_pairs(data_root, pairs=36, seed=1)
    resplit = evaluate(data_root, trained, EvalConfig())
    assert resplit.report.train_fit == {} and "train split changed" in resplit.report.train_fit_skipped
    assert "Not measured: the train split changed" in resplit.report.markdown
