"""The champion gate: the same frozen set across re-splits, per-dimension tolerance, no drift."""

import json

import polars as pl
import pytest
import torch

from aesthetic_platform.atomic import read_jsonl
from aesthetic_platform.evaluation.gate import GateConfig, best_recorded, decide, record_champion
from aesthetic_platform.evaluation.run import EvalConfig, evaluate, evaluation_set, promote_if_passed
from aesthetic_platform.registry import has_champion
from aesthetic_platform.schemas import PREFERENCE_PAIRS
from aesthetic_platform.tracking import TrackingConfig, TrainedModel
from aesthetic_platform.training.data import held_out_prompts, load_pair_splits
from tests.fixtures.pairs import write_synthetic_pairs

CONFIG = GateConfig(total_tolerance=0.01, dimension_tolerance=0.03)
GOOD = {"total": 0.70, "color": 0.65, "composition": 0.55}


def test_a_per_dimension_regression_blocks_even_when_total_improves():
    candidate = {**GOOD, "total": 0.75, "color": 0.60}  # color 5 points down, tolerance 3
    decision = decide(candidate, GOOD, {}, CONFIG)
    assert not decision.passed
    assert any(reason.startswith("color 60.0% regresses below") for reason in decision.reasons)
    assert decide({**GOOD, "color": 0.63}, GOOD, {}, CONFIG).passed  # within tolerance


def test_three_small_regressions_cannot_walk_the_champion_down(data_root):
    digest = "set-1"
    record_champion(data_root, "1", digest, GOOD)
    v2 = {**GOOD, "total": 0.695}
    assert decide(v2, GOOD, best_recorded(data_root, digest), CONFIG).passed
    record_champion(data_root, "2", digest, v2)
    v3 = {**GOOD, "total": 0.689}
    # against the current champion alone v3 would pass (0.689 >= 0.695 - 0.01) ...
    assert decide(v3, v2, {}, CONFIG).passed
    # ... but not against the best champion ever recorded on this set
    decision = decide(v3, v2, best_recorded(data_root, digest), CONFIG)
    assert not decision.passed and decision.reference["total"] == 0.70
    assert best_recorded(data_root, "another-set") == {}


def test_a_candidate_within_tolerance_passes_but_does_not_become_champion(data_root):
    digest = "set-1"
    record_champion(data_root, "1", digest, GOOD)
    candidate = {**GOOD, "total": 0.695}  # half a point below the best recorded, tolerance one point
    decision = decide(candidate, GOOD, best_recorded(data_root, digest), CONFIG)
    assert decision.passed and not decision.promote
    assert decision.held_back == ["total 69.5% is below the best recorded 70.0%"]
    assert decision.promotion.startswith("not promoted (gate passed within tolerance): total 69.5%")
    # equal or better on every gated metric: promoted; a failed gate is never promoted
    assert decide({**GOOD, "color": 0.66}, GOOD, best_recorded(data_root, digest), CONFIG).promote
    # a dimension a little below its best but within tolerance does not hold back a total at its best
    assert decide({**GOOD, "color": GOOD["color"] - 0.01}, GOOD, best_recorded(data_root, digest), CONFIG).promote
    failed = decide({**GOOD, "total": 0.60}, GOOD, {}, CONFIG)
    assert not failed.passed and not failed.promote and failed.held_back == []
    assert decide(GOOD, None, {}, CONFIG).promote  # nothing recorded: the first model becomes champion


def _random_model(root) -> TrainedModel:
    from aesthetic_platform.model import AestheticScorer, named_config

    torch.manual_seed(0)
    folder = root.models / "runs" / "random" / "final"
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return TrainedModel(root.relative(folder), "run", "0", "aesthetic-scorer", "2", "random")


@pytest.mark.slow
def test_after_a_re_split_the_gate_decides_on_the_frozen_set_and_keeps_the_champion(data_root):
    write_synthetic_pairs(data_root, pairs=24)
    trained = _random_model(data_root)
    config = EvalConfig()
    first = evaluate(data_root, trained, config)
    frozen = first.eval_set
    # the recorded champion: half a point better on total than this model, equal elsewhere
    best = {**first.report.model.gate_metrics()}
    best["total"] += 0.005
    record_champion(data_root, "1", frozen.digest, best)
    # re-split: every pair moves to train, so the current test split is empty
    table = data_root.table("preference_pairs")
    PREFERENCE_PAIRS.write(PREFERENCE_PAIRS.read(table).with_columns(pl.lit("train").alias("split")), table)
    outcome = evaluate(data_root, trained, config)
    assert outcome.eval_set.digest == frozen.digest and outcome.report.test_pairs == len(frozen.pairs) > 0
    assert outcome.decision.reference["total"] == best["total"]  # the record on the frozen set is the reference
    assert outcome.passed and not outcome.decision.promote
    assert not promote_if_passed(data_root, outcome, trained, TrackingConfig.for_root(data_root)).promoted
    assert not has_champion(data_root) and len(read_jsonl(data_root.champion_history)) == 1
    report = json.loads((outcome.report_dir / "report.json").read_text())
    assert report["gate"]["promote"] is False and "not promoted (gate passed within tolerance)" in report["gate"]["promotion"]
    assert "## Champion gate" in outcome.report.markdown


def test_the_evaluation_set_survives_a_re_split_and_never_trains(data_root):
    write_synthetic_pairs(data_root, pairs=40)
    frozen = evaluation_set(data_root)
    assert frozen.pairs and {p.split for p in frozen.pairs} == {"test"}
    # re-split: every pair moves to train (other fractions, another salt)
    table = data_root.table("preference_pairs")
    PREFERENCE_PAIRS.write(PREFERENCE_PAIRS.read(table).with_columns(pl.lit("train").alias("split")), table)
    again = evaluation_set(data_root)
    assert again.digest == frozen.digest and len(again.pairs) == len(frozen.pairs)
    splits = load_pair_splits(table, held_out_prompts(data_root))
    assert splits.train and not {p.prompt_hash for p in splits.train} & frozen.prompt_hashes
    assert evaluation_set(data_root, refresh=False).digest == frozen.digest


def test_the_gate_holds_the_same_ratio_total_and_best_of_n():
    champion = {**GOOD, "same_ratio.total": 0.68, "best_of_n": 0.50}
    # best-of-N may drop within its own, wider tolerance (5 points) ...
    assert decide({**champion, "best_of_n": 0.46}, champion, {}, CONFIG).passed
    # ... but not beyond it, even with every pairwise accuracy unchanged
    decision = decide({**champion, "best_of_n": 0.44}, champion, {}, CONFIG)
    assert not decision.passed and any(r.startswith("best_of_n 44.0% regresses below the best recorded 50.0%") for r in decision.reasons)
    # the same-ratio total is held to the total's tolerance (1 point), not a dimension's (3)
    assert not decide({**champion, "same_ratio.total": 0.665}, champion, {}, CONFIG).passed
    assert any(r.startswith("same_ratio.total") for r in decide(champion, champion, {}, CONFIG).reasons)
    # a champion recorded before these metrics existed does not block them
    assert decide({**GOOD, "same_ratio.total": 0.10, "best_of_n": 0.10}, GOOD, {}, CONFIG).passed



def _old_champion_and_new_model(data_root, tmp_path) -> TrainedModel:
    """Version 1 ("old") is the champion folder; version 2 ("new") is a trained model ready to promote."""
    from aesthetic_platform.registry import champion_swap

    old, new = tmp_path / "old", tmp_path / "new"
    for folder, marker in ((old, "old"), (new, "new")):
        folder.mkdir()
        (folder / "config.json").write_text(marker)
    with champion_swap(data_root, old, {"version": "1"}):
        pass
    return TrainedModel(data_root.relative(new), "run", "0", "aesthetic-scorer", "2", "key")


def fake_registry(monkeypatch, aliases: dict[str, str]) -> dict[str, str]:
    """MLflow's registry as far as promotion uses it, its aliases in ``aliases`` (returned, to look at afterwards)."""
    from aesthetic_platform.tracking import champion as champion_module

    class Registry:
        def get_model_version_by_alias(self, name, alias):
            if alias not in aliases:
                raise champion_module.mlflow.exceptions.MlflowException(f"no alias {alias}")
            return type("Version", (), {"version": aliases[alias]})()

        def set_registered_model_alias(self, name, alias, version):
            aliases[alias] = version

        def delete_registered_model_alias(self, name, alias):
            del aliases[alias]

    monkeypatch.setattr(champion_module.mlflow, "MlflowClient", Registry)
    return aliases


def test_promotion_puts_the_old_champion_back_when_the_alias_cannot_move(data_root, tmp_path, monkeypatch):
    from aesthetic_platform.tracking import champion as champion_module

    trained = _old_champion_and_new_model(data_root, tmp_path)

    class Refusing:
        def get_model_version_by_alias(self, name, alias):
            return type("Version", (), {"version": "1"})()

        def set_registered_model_alias(self, *args):
            raise RuntimeError("registry unreachable")

    monkeypatch.setattr(champion_module.mlflow, "MlflowClient", Refusing)
    with pytest.raises(RuntimeError, match="registry unreachable"):
        champion_module.promote_champion(data_root, trained, TrackingConfig.for_root(data_root), {"accuracy": {}})
    assert (data_root.champion / "config.json").read_text() == "old"
    assert not list(data_root.champion.parent.glob(".retired-*")) and not list(data_root.champion.parent.glob(".champion-*"))


def test_a_promotion_the_history_cannot_record_is_undone(data_root, tmp_path, monkeypatch):
    """Folder, alias and history move together: a champion the gate's history misses would let a worse model pass later."""
    from aesthetic_platform.tracking import champion as champion_module

    trained = _old_champion_and_new_model(data_root, tmp_path)
    aliases = fake_registry(monkeypatch, {"champion": "1"})

    def disk_full():
        assert aliases["champion"] == "2" and (data_root.champion / "config.json").read_text() == "new"
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left"):
        champion_module.promote_champion(data_root, trained, TrackingConfig.for_root(data_root), {"accuracy": {}}, on_promoted=disk_full)
    assert aliases == {"champion": "1"}
    assert (data_root.champion / "config.json").read_text() == "old"

    aliases.clear()  # the very first promotion: undone means no alias at all
    with pytest.raises(OSError, match="No space left"):
        champion_module.promote_champion(data_root, trained, TrackingConfig.for_root(data_root), {"accuracy": {}}, on_promoted=disk_full)
    assert aliases == {}


@pytest.mark.slow
def test_two_candidates_evaluated_at_once_cannot_both_become_champion(data_root, monkeypatch):
    """Both are measured before either is promoted, so both may promote; the promotion decides again, one at a time,
    against the history as it is then: the worse one does not replace the better one, and its report says why."""
    from aesthetic_platform.model import AestheticScorer, named_config

    aliases = fake_registry(monkeypatch, {})  # stands in for two training runs' registered versions

    write_synthetic_pairs(data_root, pairs=40)
    candidates = []
    for seed, version in ((0, "2"), (3, "3")):
        torch.manual_seed(seed)
        folder = data_root.models / "runs" / f"seed{seed}" / "final"
        AestheticScorer(named_config("tiny")).save_pretrained(folder)
        candidates.append(TrainedModel(data_root.relative(folder), "run", "0", "aesthetic-scorer", version, f"seed{seed}"))
    outcomes = [evaluate(data_root, trained, EvalConfig()) for trained in candidates]  # nothing recorded yet: both may promote
    assert all(outcome.decision.promote for outcome in outcomes)
    better, worse = sorted(range(2), key=lambda i: -outcomes[i].report.model.gate_metrics()["total"])
    assert outcomes[better].report.model.gate_metrics()["total"] > outcomes[worse].report.model.gate_metrics()["total"]
    tracking = TrackingConfig.for_root(data_root)
    assert promote_if_passed(data_root, outcomes[better], candidates[better], tracking).promoted
    late = promote_if_passed(data_root, outcomes[worse], candidates[worse], tracking)
    assert not late.promoted and not late.decision.promote
    assert late.decision.reasons[0] == (
        f"version {candidates[better].version} became champion while this model was evaluated; decided again against it"
    )
    assert json.loads((data_root.champion / "champion.json").read_text())["version"] == candidates[better].version
    assert aliases == {"champion": candidates[better].version}
    assert [record["version"] for record in read_jsonl(data_root.champion_history)] == [candidates[better].version]
    report = json.loads((late.report_dir / "report.json").read_text())
    assert report["gate"]["promote"] is False and report["gate"]["reasons"][0].startswith(f"version {candidates[better].version}")
    assert "became champion while this model was evaluated" in (late.report_dir / "report.md").read_text()


_PROMOTE_AND_DIE = """
import os, signal, sys
from pathlib import Path
from aesthetic_platform.evaluation.gate import record_champion
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking import TrackingConfig, TrainedModel
from aesthetic_platform.tracking.champion import promote_champion

root, folder, after_record = DataRoot(Path(sys.argv[1])), sys.argv[2], sys.argv[3] == "1"
trained = TrainedModel(folder, "run", "0", "aesthetic-scorer", "2", "key2")

def die():  # killed after folder and alias moved: before the history's record, or right after it
    if after_record:
        record_champion(root, "2", "set-1", {"total": 0.9})
    os.kill(os.getpid(), signal.SIGKILL)

promote_champion(root, trained, TrackingConfig.for_root(root), {"accuracy": {}}, on_promoted=die)
"""


@pytest.mark.slow
@pytest.mark.parametrize("after_record", [False, True])
def test_a_promotion_killed_half_way_is_undone_or_finished_before_the_champion_is_read_again(data_root, after_record):
    """kill -9 between the folder swap and the history's record would leave a champion the gate does not know."""
    import subprocess
    import sys
    from pathlib import Path

    import mlflow

    from aesthetic_platform.evaluation.run import settle_promotions
    from aesthetic_platform.model import AestheticScorer, named_config
    from aesthetic_platform.registry import champion_leftovers, promotion_record
    from aesthetic_platform.tracking.champion import champion_version, promote_champion, promotion_intent

    tracking = TrackingConfig.for_root(data_root)
    tracking.activate()
    client = mlflow.MlflowClient()
    client.create_registered_model("aesthetic-scorer")
    folders = {}
    for version in ("1", "2"):
        folders[version] = data_root.models / "runs" / f"v{version}" / "model"
        AestheticScorer(named_config("tiny")).save_pretrained(folders[version])
        client.create_model_version("aesthetic-scorer", folders[version].as_uri())
    old = TrainedModel(data_root.relative(folders["1"]), "run", "0", "aesthetic-scorer", "1", "key1")
    promote_champion(data_root, old, tracking, {"accuracy": {}}, on_promoted=lambda: record_champion(data_root, "1", "set-1", GOOD))

    child = subprocess.run(
        [sys.executable, "-c", _PROMOTE_AND_DIE, str(data_root.root), data_root.relative(folders["2"]), "1" if after_record else "0"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=300,
    )
    assert child.returncode == -9, child.stderr  # killed, not finished: nothing of its cleanup ran
    assert promotion_intent(data_root).exists() and champion_leftovers(data_root)
    assert promotion_record(data_root.champion)["version"] == "2" and champion_version(tracking, "aesthetic-scorer") == "2"

    done = settle_promotions(data_root, tracking)
    expected = "2" if after_record else "1"
    assert ("finished it" if after_record else "undid it (champion back to 1)") in done
    assert promotion_record(data_root.champion)["version"] == expected  # folder, alias and history agree again
    assert champion_version(tracking, "aesthetic-scorer") == expected
    assert [record["version"] for record in read_jsonl(data_root.champion_history)] == ["1", *(["2"] if after_record else [])]
    assert not promotion_intent(data_root).exists() and not champion_leftovers(data_root)
    assert settle_promotions(data_root, tracking) == ""  # nothing left to settle
