"""End-to-end wall time of ``aesthetic demo`` on a fresh data root, with the headline it printed.

    PYTHONPATH=. .venv/bin/python benchmarks/demo_wall_time.py

Prints one JSON object: total seconds, and the per-dimension held-out accuracy with CIs read
back from the eval report the demo wrote.
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
        per_dimension = json.loads(report.read_text())["model"]["per_dimension"]
    print(json.dumps({
        "benchmark": "demo_wall_time", "seconds": round(seconds, 1), "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "held_out_accuracy": {d: {k: round(v, 3) for k, v in a.items()} for d, a in per_dimension.items()},
    }))


if __name__ == "__main__":
    main()
