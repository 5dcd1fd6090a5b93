"""Evaluate a trained model against the champion on the frozen evaluation set; promote on success."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from pydantic import Field, ValidationError

from aesthetic_platform.atomic import held_exclusively, read_jsonl, write_json, write_text
from aesthetic_platform.evaluation.gate import GateConfig, GateDecision, best_recorded, decide, history_path, record_champion
from aesthetic_platform.evaluation.report import (
    EvalReport,
    ModelAccuracy,
    heuristic_accuracy_on_humans,
    model_accuracy,
    render_markdown,
    render_plots,
    teacher_signal,
    train_fit,
)
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import champion_dir, has_champion
from aesthetic_platform.schemas import PreferencePair
from aesthetic_platform.tracking import TrackingConfig, TrainedModel
from aesthetic_platform.tracking.champion import promote_champion, recover_interrupted_promotion
from aesthetic_platform.training.config import load_training_config, trained_loss_config
from aesthetic_platform.training.data import EvalSet, freeze_eval_set, held_out_prompts, load_eval_set, load_pair_splits
from aesthetic_platform.training.loop import data_fingerprint
from aesthetic_platform.workbench.preferences import load_human_preferences

ScoreImageFn = Callable[[str, str], dict[str, float]]
#: Held while a candidate is decided again and promoted (beside the champion folder): one promotion at a time.
PROMOTION_LOCK = "champion.lock"


class EvalConfig(GateConfig):
    """The champion gate's tolerances, and whether to re-freeze the evaluation set."""

    refresh_eval_set: bool = Field(
        default=False,
        description="Freeze the current test split as the new evaluation set (champion history on the old set no longer applies).",
    )
    train_fit_pairs: int = Field(
        default=2000, ge=0,
        description="Same-ratio pairs of the train split the student is also scored on, so the report can tell a student that "
        "underfits a dimension from one that overfits it (0: skip).",
    )


@dataclass
class EvalOutcome:
    report: EvalReport
    decision: GateDecision
    report_dir: Path
    eval_set: EvalSet
    #: the tolerances the decision was taken with (a promotion decides again with them)
    gate: GateConfig
    promoted: bool = False

    @property
    def passed(self) -> bool:
        return self.decision.passed


def evaluation_set(root: DataRoot, refresh: bool = False) -> EvalSet:
    """The frozen evaluation set; frozen from the current test split the first time (or on ``refresh``)."""
    current = None if refresh else load_eval_set(root)
    return current or freeze_eval_set(root, load_pair_splits(root.table("preference_pairs"), root=root).test)


def tie_threshold_of(model_dir: Path) -> float:
    """The tie threshold the model was trained with (the loss default for models saved outside training)."""
    return trained_loss_config(model_dir).tie_threshold


def _champion_accuracy(root: DataRoot, model: AestheticScorer, eval_set: EvalSet, humans, tie: float, device: str) -> ModelAccuracy | None:
    if not has_champion(root):
        return None
    champion = AestheticScorer.from_pretrained(champion_dir(root)).to(device)
    if tuple(champion.dimensions) != tuple(model.dimensions):
        return None
    return model_accuracy(champion, eval_set.pairs, humans, tie, device)


def evaluate(root: DataRoot, trained: TrainedModel, config: EvalConfig, heuristic: ScoreImageFn | None = None) -> EvalOutcome:
    """Score the model (and the champion) on the evaluation set and the human picks; decide the gate."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_dir = trained.path(root)
    eval_set = evaluation_set(root, config.refresh_eval_set)
    humans = load_human_preferences(root)
    tie = tie_threshold_of(model_dir)
    model = AestheticScorer.from_pretrained(model_dir).to(device)
    new = model_accuracy(model, eval_set.pairs, humans, tie, device)
    champion = _champion_accuracy(root, model, eval_set, humans, tie, device)
    decision = decide(
        new.gate_metrics(), champion.gate_metrics() if champion else None, best_recorded(root, eval_set.digest), config,
    )
    report = EvalReport(
        dimensions=tuple(model.dimensions), tie_threshold=tie, test_pairs=len(eval_set.pairs), human_pairs=len(humans),
        model=new, champion=champion, eval_set=eval_set.digest,
        heuristic_human=heuristic_accuracy_on_humans(humans, heuristic) if heuristic else None,
        teacher_signal=teacher_signal(eval_set.pairs, model.dimensions, tie),
    )
    if config.train_fit_pairs:
        pairs, report.train_fit_skipped = training_pairs_of(root, model_dir, trained.run_key)
        report.train_fit = train_fit(model, pairs, tie, config.train_fit_pairs, device)
        if pairs and not report.train_fit:
            report.train_fit_skipped = "the train split has no same-ratio pairs"
    else:
        report.train_fit_skipped = "train_fit_pairs is 0"
    report_dir = root.eval_report_dir(trained.run_key, trained.version)
    report.plots = render_plots(report, report_dir)
    outcome = EvalOutcome(report, decision, report_dir, eval_set, gate=config)
    write_report(outcome)
    return outcome


def write_report(outcome: EvalOutcome) -> None:
    """``report.md`` and ``report.json`` of the outcome, the gate's decision included."""
    report, decision = outcome.report, outcome.decision
    report.markdown = render_markdown(report) + _gate_markdown(decision)
    write_text(outcome.report_dir / "report.md", report.markdown)
    gate = {"passed": decision.passed, "reasons": decision.reasons, "promote": decision.promote, "promotion": decision.promotion}
    write_json(outcome.report_dir / "report.json", {**report.as_dict(), "gate": gate})


def training_pairs_of(root: DataRoot, model_dir: Path, run_key: str) -> tuple[list[PreferencePair], str]:
    """(the pairs the model was trained on, "") when the current train split is still them, else ([], why not).

    The run key is the fingerprint of the training config and the train pairs' ids, so a re-split or
    pairs added or dropped since training show as a different key: the student's "fit on its own
    training pairs" would then be measured on pairs it partly never saw. (A re-judge that keeps every
    pair keeps the ids, and the fit is then measured against the new verdicts.)"""
    try:
        config = load_training_config(model_dir)
    except ValidationError as exc:
        return [], f"its training.json does not validate in this version ({exc.error_count()} errors)"
    if config is None:
        return [], "the model was saved outside training (no training.json)"
    pairs = load_pair_splits(root.table("preference_pairs"), held_out_prompts(root), root).train
    if config.fingerprint(data_fingerprint(pairs)) != run_key:
        return [], f"the train split changed since this model was trained (run key {run_key})"
    return pairs, ""


def settle_promotions(root: DataRoot, tracking: TrackingConfig) -> str:
    """Finish or undo a promotion a killed process left half done, before the champion is measured or
    replaced; returns what was done ("" when nothing was pending)."""
    with held_exclusively(root.champion.with_name(PROMOTION_LOCK)):
        return _settle(root, tracking)


def _settle(root: DataRoot, tracking: TrackingConfig) -> str:
    def recorded(intent: dict) -> bool:
        return any(str(record.get("version")) == str(intent["version"]) and str(record.get("promoted_at", "")) >= intent["started_at"]
                   for record in read_jsonl(history_path(root)))

    return recover_interrupted_promotion(root, tracking, recorded)


def _gate_markdown(decision: GateDecision) -> str:
    lines = [f"- {reason}" for reason in decision.reasons]
    verdict = "passed" if decision.passed else "failed"
    return f"\n\n## Champion gate\n\n**{verdict}**; {decision.promotion}\n\n" + "\n".join(lines) + "\n"


def promote_if_passed(root: DataRoot, outcome: EvalOutcome, trained: TrainedModel, tracking: TrackingConfig) -> EvalOutcome:
    """When the gate allows promotion (passed, and ``total`` at or above the best recorded champion):
    champion folder, alias and the champion history's record move together or not at all.

    Two candidates evaluated at the same time were both measured against the champion before either
    moved, so the decision is taken again, one promotion at a time, against the champion history as it
    is now: a candidate worse than one promoted while it was evaluated does not replace it (its report
    is rewritten to say so)."""
    if not outcome.decision.promote:
        return outcome
    digest = outcome.eval_set.digest
    accuracy = outcome.report.model.gate_metrics()
    with held_exclusively(root.champion.with_name(PROMOTION_LOCK)):  # waits for a promotion in progress
        _settle(root, tracking)
        champion = outcome.report.champion.gate_metrics() if outcome.report.champion else None
        now = decide(accuracy, champion, best_recorded(root, digest), outcome.gate)
        if now.promote:
            promote_champion(root, trained, tracking, {"eval_set": digest, "accuracy": accuracy},
                             on_promoted=lambda: record_champion(root, trained.version, digest, accuracy))
            outcome.promoted = True
            return outcome
        latest = read_jsonl(history_path(root))[-1]  # the history moved since evaluate(): its newest record did it
    note = f"version {latest['version']} became champion while this model was evaluated; decided again against it"
    outcome.decision = replace(now, reasons=[note, *now.reasons])
    write_report(outcome)
    return outcome
