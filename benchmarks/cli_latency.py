"""Wall time of trivial ``aesthetic`` commands (``--help``, ``batch add``, ``batch list``), as JSON.

    python benchmarks/cli_latency.py [--repeats 5]

Each command runs as a fresh process against a fresh data root, the way a user types it;
the median of ``--repeats`` runs is reported next to the time of ``python -c 'import dagster'``,
the floor for any command that opens the Dagster instance.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


def _median_s(command: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as home:
        env = {**os.environ, "AESTHETIC_HOME": home}
        subprocess.run([AESTHETIC, "batch", "add", "warm-0001"], env=env, check=True, capture_output=True)
        result = {
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "import_dagster_s": _median_s([sys.executable, "-c", "import dagster"], env, args.repeats),
            "help_s": _median_s([AESTHETIC, "--help"], env, args.repeats),
            "batch_add_s": _median_s([AESTHETIC, "batch", "add", "b-0001", "b-0002"], env, args.repeats),
            "batch_list_s": _median_s([AESTHETIC, "batch", "list"], env, args.repeats),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
