"""Wall time of trivial ``aesthetic`` commands (``--help``, ``batch add``, ``batch list``), as JSON.

    python benchmarks/cli_latency.py [--repeats 5]

Each command runs as a fresh process against a fresh data root, the way a user types it;
the median of ``--repeats`` runs is reported next to the time of ``python -c 'import dagster'``,
the floor for any command that opens the Dagster instance. On a shared machine wall time
depends on what else runs, so each command also reports its fastest run and its median CPU
time (user + system of the child process), with the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


def _median_s(command: list[str], env: dict[str, str], repeats: int) -> float:
    return _timed(command, env, repeats)["median_s"]


def _timed(command: list[str], env: dict[str, str], repeats: int) -> dict[str, float]:
    """Median and fastest wall time, and median CPU time, of ``repeats`` fresh processes."""
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "median_s": round(statistics.median(walls), 3), "min_s": round(min(walls), 3), "cpu_median_s": round(statistics.median(cpus), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="cli-bench-") as home:
        env = {**os.environ, "AESTHETIC_HOME": home}
        subprocess.run([AESTHETIC, "batch", "add", "warm-0001"], env=env, check=True, capture_output=True)
        result = {
            "repeats": args.repeats,
            "cpu_count": os.cpu_count(),
            "import_dagster_s": _median_s([sys.executable, "-c", "import dagster"], env, args.repeats),
            "help_s": _median_s([AESTHETIC, "--help"], env, args.repeats),
            "batch_add_s": _median_s([AESTHETIC, "batch", "add", "b-0001", "b-0002"], env, args.repeats),
        }
        batch_list = _timed([AESTHETIC, "batch", "list"], env, args.repeats)
        result.update({
            "batch_list_s": batch_list["median_s"],
            "batch_list_min_s": batch_list["min_s"],
            "batch_list_cpu_s": batch_list["cpu_median_s"],
            "load_average_before": load_before,
            "load_average_after": round(os.getloadavg()[0], 2),
        })
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
