"""Evaluate the newest model against the champion, publish the report, promote on success."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from aesthetic_platform.atomic import write_json, write_text
from aesthetic_platform.evaluation.report import (
    EvalReport,
    heuristic_accuracy_on_humans,
    model_accuracy,
    no_regression,
    render_markdown,
    render_plots,
)
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import champion_dir, has_champion, promote
from aesthetic_platform.schemas import HUMAN_PREFERENCES
from aesthetic_platform.training.data import load_pair_splits
from aesthetic_platform.training.tracked import TrainedModel

ScoreImageFn = Callable[[str, str], dict[str, float]]


def heuristic_image_scores(path: str, prompt: str) -> dict[str, float]:
    """The pixel heuristic judge's unit scores for one image file (a baseline on human picks)."""
    from PIL import Image

    from aesthetic_platform.judging.heuristic import unit_scores

    with Image.open(path) as image:
        return unit_scores(image.convert("RGB"), prompt)


@dataclass
class EvalOutcome:
    report: EvalReport
    passed: bool
    reason: str
    report_dir: Path
    promoted: bool


def _humans(root: DataRoot) -> list:
    path = root.table("human_preferences")
    return HUMAN_PREFERENCES.rows(HUMAN_PREFERENCES.read(path)) if path.exists() else []


def evaluate_latest(
    root: DataRoot, tie_threshold: float, tolerance: float, heuristic: ScoreImageFn | None = None
) -> EvalOutcome:
    """Score the newest model (and the champion) on the teacher test split and the human picks."""
    trained = TrainedModel.latest(root)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    test_pairs = load_pair_splits(root.table("preference_pairs")).test
    if not test_pairs:
        raise ValueError("the preference_pairs test split is empty: judge more batches before evaluating")
    humans = _humans(root)
    model = AestheticScorer.from_pretrained(trained.model_dir).to(device)
    new = model_accuracy(model, test_pairs, humans, tie_threshold, device)
    champion = None
    if has_champion(root):
        champion_model = AestheticScorer.from_pretrained(champion_dir(root)).to(device)
        if tuple(champion_model.dimensions) == tuple(model.dimensions):
            champion = model_accuracy(champion_model, test_pairs, humans, tie_threshold, device)
    report = EvalReport(
        dimensions=tuple(model.dimensions), tie_threshold=tie_threshold, test_pairs=len(test_pairs), human_pairs=len(humans),
        model=new, champion=champion,
        heuristic_human=heuristic_accuracy_on_humans(humans, heuristic) if heuristic else None,
    )
    report.markdown = render_markdown(report)
    report_dir = root.root / "reports" / f"eval-{trained.run_key}-v{trained.version}"
    report.plots = render_plots(report, report_dir)
    write_text(report_dir / "report.md", report.markdown)
    write_json(report_dir / "report.json", report.as_dict())
    passed, reason = no_regression(report, tolerance)
    return EvalOutcome(report, passed, reason, report_dir, promoted=False)


def promote_if_passed(root: DataRoot, outcome: EvalOutcome, trained: TrainedModel) -> EvalOutcome:
    """Copy the model to the champion folder; MLflow's alias is moved by the caller's tracking client."""
    if outcome.passed:
        promote(root, Path(trained.model_dir), {**trained.__dict__, "headline": outcome.report.headline().as_dict()})
        outcome.promoted = True
    return outcome
