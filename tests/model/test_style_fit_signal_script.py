"""The style_fit signal benchmark runs on a data root and reports what it claims (no figure asserted)."""

from __future__ import annotations

import torch

from benchmarks.style_fit_signal import main
from tests.fixtures.pairs import write_synthetic_pairs


def test_signal_benchmark_reports_the_judge_on_the_student_view_and_the_tower_probes(data_root, capsys):
    write_synthetic_pairs(data_root, pairs=36)
    threads = torch.get_num_threads()
    try:
        report = main(["--home", str(data_root.root), "--images", "16", "--test-images", "8", "--epochs", "2"])
    finally:
        torch.set_num_threads(threads)
    assert '"benchmark": "style_fit_signal"' in capsys.readouterr().out
    assert set(report["judge_on_student_view"]) == {"total", "composition", "color", "style_fit", "prompt_alignment"}
    for entry in report["judge_on_student_view"].values():
        assert entry["decisive_pairs"] == 0 or 0.0 <= entry["reproduced"] <= 1.0
    finish = report["finish"]
    assert finish["images"] == {"train": 16, "test": 8}
    assert finish["sigma_grey_levels_percentiles"]["p10"] <= finish["sigma_grey_levels_percentiles"]["p90"]
    assert len(finish["tower_trained_on_it_r2_per_epoch"]) == 2 and len(report["contrast"]["tower_trained_on_it_r2_per_epoch"]) == 2
