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
