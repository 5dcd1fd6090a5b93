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
    assert all(entry["gflop_per_pair"] > 0 and entry["achieved_tflops_median"] > 0 for entry in strategies.values())
    # the padding pad_to_max executes is counted: every image padded to the largest grid costs more than the square
    assert strategies["pad_to_max"]["gflop_per_pair"] > strategies["square"]["gflop_per_pair"]
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


def test_attention_on_cpu_is_counted_like_the_cuda_kernels():
    """SDPA with a boolean mask (the packed forward's) dispatches a CPU kernel the flop counter does not know by itself."""
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.model_batching import _count_cpu_attention

    _count_cpu_attention()
    rows, heads, length, width = 2, 2, 130, 32
    q, k, v = (torch.randn(rows, heads, length, width, requires_grad=True) for _ in range(3))
    mask = torch.ones(rows, 1, length, length, dtype=torch.bool)
    with FlopCounterMode(display=False) as forward:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert forward.get_total_flops() == 2 * (2 * rows * heads * length * length * width)  # Q K^T and (softmax) V
    with FlopCounterMode(display=False) as both:
        torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
    assert both.get_total_flops() == 3.5 * forward.get_total_flops()  # backward: 5 matmuls of the same size as forward's 2


def test_the_bf16_autocast_path_the_cuda_run_takes_runs_here():
    """The production shapes only run with CUDA; their bf16 autocast, timing and FLOP counting run here on the tiny config."""
    from benchmarks.model_batching import run_config

    threads = torch.get_num_threads()
    try:
        report = run_config("tiny", 24, 8, 1, 0, torch.device("cpu"), torch.bfloat16)
    finally:
        torch.set_num_threads(threads)
    assert report["dtype"] == "bfloat16"
    assert all(entry["gflop_per_pair"] > 0 and entry["achieved_tflops_median"] > 0 for entry in report["strategies"].values())
