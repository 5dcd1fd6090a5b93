"""The batching benchmark script runs and reports what it claims (no timing asserted)."""

from __future__ import annotations

import torch

from benchmarks.model_batching import STRATEGIES, main


def test_benchmark_reports_every_strategy(capsys):
    threads = torch.get_num_threads()
    try:
        report = main(["--pairs", "40", "--batch-size", "8", "--repeats", "1", "--scorer-images", "10"])
    finally:
        torch.set_num_threads(threads)
    assert '"benchmark": "model_batching"' in capsys.readouterr().out
    strategies = report["tiny_cpu"]["strategies"]
    assert set(strategies) == set(STRATEGIES)
    assert all(entry["pairs_per_s_median"] > 0 for entry in strategies.values())
    assert strategies["square"]["padded_token_fraction"] == 0.0
    assert strategies["ratio_bucketed"]["padded_token_fraction"] < strategies["dynamic"]["padded_token_fraction"]
    assert strategies["dynamic"]["padded_token_fraction"] <= strategies["pad_to_max"]["padded_token_fraction"]
    assert strategies["packed"]["padded_token_fraction"] < strategies["ratio_bucketed"]["padded_token_fraction"]
    assert report["tiny_cpu"]["speedup_median"]["packed_vs_pad_to_max"] > 0
    scorer = report["scorer_tiny_cpu"]
    assert scorer["images"] == 10 and scorer["batched_images_per_s"] > 0 and scorer["one_per_call_images_per_s"] > 0
    if not torch.cuda.is_available():
        assert "skipped" in report["vit_l_14_xlmr_base_cuda"]


def test_end_to_end_mode_trains_from_png_files_under_each_strategy(capsys):
    threads = torch.get_num_threads()
    try:
        report = main([
            "--pairs", "16", "--batch-size", "8", "--repeats", "1", "--scorer-images", "4",
            "--end-to-end", "--e2e-pairs", "24", "--e2e-epochs", "2", "--e2e-workers", "1",
        ])
    finally:
        torch.set_num_threads(threads)
    e2e = report["tiny_cpu_end_to_end"]
    assert set(e2e["strategies"]) == {"pad_to_max", "ratio_bucketed", "packed"}
    for run in [*e2e["strategies"].values(), e2e["ratio_bucketed_reshuffled"]]:
        assert run["pairs_per_s"] > 0 and len(run["loss_per_epoch"]) == 2
        assert all(value == value and value > 0 for value in run["loss_per_epoch"])
    assert e2e["loss_gap_vs_ratio_bucketed"]["ratio_bucketed"] == 0.0
    assert e2e["loss_gap_of_a_reshuffle"] > 0, "another shuffle seed gives another trajectory"
