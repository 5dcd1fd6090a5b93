"""End-to-end wall time of ``aesthetic demo`` on a fresh data root, with the headline it printed.

    PYTHONPATH=. .venv/bin/python benchmarks/demo_wall_time.py

Prints one JSON object: total seconds, and the per-dimension held-out accuracy with CIs read
back from the eval report the demo wrote: on all test pairs, on same-ratio test pairs, and
best-of-N (with its random-choice rate).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    aesthetic = str(Path(sys.executable).with_name("aesthetic"))
    with tempfile.TemporaryDirectory() as home:
        started = time.perf_counter()
        subprocess.run([aesthetic, "demo", "--home", home], check=True, capture_output=True)
        seconds = time.perf_counter() - started
        (report,) = Path(home, "reports").glob("eval-*/report.json")
        model = json.loads(report.read_text())["model"]
    per_dimension = model["per_dimension"]
    same_ratio = model.get("per_kind", {}).get("same_ratio", {})
    best_of_n = {d: {k: b[k] for k in ("accuracy", "ci_low", "ci_high", "n", "chance")} for d, b in model.get("best_of_n", {}).items()}
    print(json.dumps({
        "benchmark": "demo_wall_time", "seconds": round(seconds, 1), "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "held_out_accuracy": {d: {k: round(v, 3) for k, v in a.items()} for d, a in per_dimension.items()},
        "same_ratio_accuracy": {d: {k: round(v, 3) for k, v in a.items()} for d, a in same_ratio.items()},
        "best_of_n": {d: {k: round(v, 3) for k, v in b.items()} for d, b in best_of_n.items()},
    }))


if __name__ == "__main__":
    main()
