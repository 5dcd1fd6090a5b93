"""Golden-noise analysis, human preference pairs, and their Dagster assets and sensor."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import polars as pl
import pytest
import torch

from aesthetic_platform.assets.golden_noise import golden_noise_analysis, human_preferences
from aesthetic_platform.jobs.golden_noise import workbench_selections_sensor
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.workbench.noise import (
    FEATURES,
    LatentGeometry,
    NoiseSample,
    SelectorConfig,
    analyse_golden_noise,
    collect_samples,
    initial_noise,
    noise_features,
    seed_selector_baseline,
)
from aesthetic_platform.workbench.preferences import build_human_preferences, preference_rows
from aesthetic_platform.workbench.selections import (
    JudgedImage,
    Selection,
    Undo,
    active_selections,
    append_record,
    new_id,
    read_log,
    selections_path,
    utc_now,
)
from tests.fixtures.tiny_diffusers import tiny_flux_pipeline

#: fast but still meaningful settings for the selector's significance machinery
FAST = SelectorConfig(permutations=40, bootstrap=200)
SIZE = 64


def _selection(prompt: str, golden: list[int], bad: list[int], annotator: str = "alice", params: dict | None = None) -> Selection:
    seeds = [*golden, *bad]
    return Selection(
        submission_id=new_id(), batch_id=new_id(), prompt_id=f"p{prompt}", prompt=f"prompt {prompt}", prompt_hash=f"h{prompt}",
        golden_seeds=golden, bad_seeds=bad,
        images=[JudgedImage(seed=s, path=f"/data/{prompt}/{s}.png", width=SIZE, height=SIZE) for s in seeds],
        generator="poster-renderer/v1", model_version="poster-renderer/v1", steps=None, guidance=None, scheduler=None,
        ratio="1:1", width=SIZE, height=SIZE, params=params or {}, score_model=None, annotator=annotator,
        generated_at=utc_now(), submitted_at=utc_now(),
    )


def test_initial_noise_is_what_the_flux_pipeline_draws():
    """Regenerated noise == the pipeline's prepare_latents with one CPU generator per image (packed)."""
    pipe = tiny_flux_pipeline()
    channels = pipe.transformer.config.in_channels // 4
    geometry = LatentGeometry(channels, pipe.vae_scale_factor, "flux")
    seeds, width, height = [3, 1234567], 80, 48
    latents, _ = pipe.prepare_latents(
        len(seeds), channels, height, width, torch.float32, torch.device("cpu"),
        [torch.Generator("cpu").manual_seed(s) for s in seeds],
    )
    ours = torch.cat([initial_noise(s, width, height, geometry) for s in seeds])
    packed = pipe._pack_latents(ours, len(seeds), channels, ours.shape[2], ours.shape[3])
    assert torch.equal(latents, packed)
    assert initial_noise(3, 1024, 1024).shape == (1, 16, 128, 128)  # FLUX.1 default geometry


def test_noise_features_are_near_their_null_values():
    features = noise_features(initial_noise(0, 512, 512))
    assert list(features) == list(FEATURES)
    assert abs(features["std"] - 1) < 0.02 and abs(features["excess_kurtosis"]) < 0.1
    assert abs(features["lag1_corr_x"]) < 0.03 and 0.5 < features["low_freq_energy"] < 1.6


def _samples_with(label) -> list[NoiseSample]:
    selections = []
    for p in range(8):
        seeds = list(range(p * 100, p * 100 + 8))
        golden = [s for s in seeds if label(s)]
        selections.append(_selection(str(p), golden, [s for s in seeds if s not in golden]))
    return collect_samples(selections)


def test_selector_finds_a_planted_signal():
    """Golden = seeds whose noise mean is high: a working selector must see it on held-out prompts."""
    samples = _samples_with(lambda s: noise_features(initial_noise(s, SIZE, SIZE))["mean_z"] > 0.3)
    result = seed_selector_baseline(samples, FAST)
    assert result["status"] == "evaluated" and result["verdict"] == "above chance"
    assert result["auc"] > 0.85 and result["auc_ci"][0] > 0.5 and result["permutation_p"] < 0.05


def test_selector_reports_chance_when_labels_ignore_the_noise():
    rng = np.random.default_rng(5)
    coin = {s: bool(rng.random() < 0.4) for s in range(800)}
    result = seed_selector_baseline(_samples_with(lambda s: coin[s]), FAST)
    assert result["verdict"] == "chance"
    assert result["permutation_p"] >= 0.05 and "chance level" in result["interpretation"]


def test_selector_refuses_to_guess_on_too_little_data():
    result = seed_selector_baseline(collect_samples([_selection("a", [1], [2, 3])]), FAST)
    assert result["status"] == "insufficient data" and "at least" in result["reason"] and "auc" not in result


def test_pipeline_geometry_is_used_when_recorded():
    params = {"latent_channels": 4, "vae_scale_factor": 8, "latent_layout": "flux"}
    (sample, _) = collect_samples([_selection("g", [5], [6], params=params)])
    assert sample.pipeline_noise is True and sample.embedding.size == 4 * 8 * 8  # 4 channels, 64px -> 8x8 latents
    (default, _) = collect_samples([_selection("g", [5], [6])])
    assert default.pipeline_noise is False and default.embedding.size == 16 * 8 * 8  # FLUX.1 convention


def test_preference_pairs_are_golden_times_bad_with_annotator():
    selections = [_selection("a", [1, 2], [3, 4, 5], "alice"), _selection("b", [], [6, 7], "bob"), _selection("c", [8, 9], [], "bob")]
    rows = preference_rows(selections)
    assert len(rows) == 6  # 2 x 3; all-bad and all-golden batches have no cross pairs
    assert {(r.winner_seed, r.loser_seed) for r in rows} == {(w, l) for w in (1, 2) for l in (3, 4, 5)}
    assert {r.annotator for r in rows} == {"alice"} and {r.dimension for r in rows} == {"total"}
    assert rows[0].winner_path == "/data/a/1.png" and len({r.pair_id for r in rows}) == 6


def test_human_preferences_and_analysis_assets_and_sensor(data_root):
    resources = {"data_root": DataRootResource(home=str(data_root.root))}
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources=resources)
        assert isinstance(workbench_selections_sensor(context), dg.SkipReason)  # no log yet
        kept = _selection("a", [1], [2, 3], "alice")
        append_record(data_root, kept)
        undone = _selection("b", [4], [5], "bob")
        append_record(data_root, undone)
        append_record(data_root, Undo(submission_id=new_id(), undoes=undone.submission_id, annotator="bob", submitted_at=utc_now()))

        grown = workbench_selections_sensor(context)
        assert isinstance(grown, dg.SensorResult) and len(grown.run_requests) == 1
        assert grown.cursor == str(selections_path(data_root).stat().st_size)
        context.update_cursor(grown.cursor)
        assert isinstance(workbench_selections_sensor(context), dg.SkipReason)  # unchanged since

        result = dg.materialize(
            [human_preferences, golden_noise_analysis], instance=instance, resources=resources,
            run_config={"ops": {"golden_noise_analysis": {"config": {"permutations": 20, "bootstrap": 100}}}},
        )
    assert result.success
    metadata = result.asset_materializations_for_node("human_preferences")[0].metadata
    assert metadata["pairs"].value == 2 and metadata["annotators"].value == "alice"
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"human_pairs_have_annotator": True, "human_pairs_images_exist": False}  # fake paths in this test
    table = pl.read_parquet(data_root.table("human_preferences"))
    assert table.height == 2 and set(table["annotator"]) == {"alice"} and set(table["loser_seed"]) == {2, 3}
    analysis = result.asset_materializations_for_node("golden_noise_analysis")[0].metadata
    assert analysis["verdict"].value == "not evaluated" and analysis["samples"].value == 3


def test_full_analysis_writes_report_and_plot(data_root):
    for p in range(6):
        seeds = list(range(p * 10, p * 10 + 5))
        append_record(data_root, _selection(str(p), seeds[:2], seeds[2:]))
    report = analyse_golden_noise(data_root, FAST)
    assert report["samples"] == 30 and report["golden"] == 12 and report["pipeline_noise_samples"] == 0
    assert report["seed_selector"]["status"] == "evaluated"
    assert report["seed_selector"]["verdict"] in ("chance", "above chance")
    assert report["tsne"]["status"] == "plotted"
    png = (data_root.root / "workbench" / "analysis" / "golden_noise_tsne.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Seed selector" in (data_root.root / "workbench" / "analysis" / "golden_noise_report.md").read_text()


def test_human_preferences_on_an_empty_log(data_root):
    path, rows, selections = build_human_preferences(data_root)
    assert rows == [] and selections == [] and pl.read_parquet(path).height == 0


@pytest.mark.parametrize("bad_line", ['{"kind": "vote"}\n'])
def test_unknown_log_records_are_reported(data_root, bad_line):
    selections_path(data_root).parent.mkdir(parents=True, exist_ok=True)
    selections_path(data_root).write_text(bad_line)
    with pytest.raises(ValueError, match="record 1 has unknown kind 'vote'"):
        build_human_preferences(data_root)


def _append_many(home: str, annotator: str, count: int) -> None:
    root = DataRoot(Path(home))
    for k in range(count):
        append_record(root, _selection(f"{annotator}{k}", [k], [k + 1000], annotator))


def test_several_processes_appending_lose_nothing(data_root):
    """Annotators on separate servers share one data root: every line arrives whole."""
    import multiprocessing

    processes, per_process = 3, 25
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(data_root.root), f"w{i}", per_process)) for i in range(processes)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    records = active_selections(read_log(data_root))  # validates every line
    assert len(records) == processes * per_process
    assert {r.annotator for r in records} == {f"w{i}" for i in range(processes)}
