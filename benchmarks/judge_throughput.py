"""Judge throughput against the local OpenAI-compatible server, and the cost of a re-run.

Starts the local test server with ``--latency`` seconds of injected latency per call,
judges ``--pairs`` candidate pairs (one order, so one call per pair) through the real
async ``openai`` SDK at each concurrency, and prints JSON: pairs judged per minute per
concurrency, and the number of API calls a second materialization of the same pairs
makes (must be 0: every verdict comes from the cache).

    PYTHONPATH=. python benchmarks/judge_throughput.py [--pairs 32] [--latency 1.0] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from aesthetic_platform.judging import JudgeConfig, JudgingConfig, OpenAIJudge, judge_batch
from aesthetic_platform.paths import DataRoot
from tests.fixtures.candidates import make_batch
from tests.fixtures.judge_server import JudgeServerState, running_judge_server


def prepare(root: DataRoot, batch: str, pairs: int) -> None:
    """A batch with at least ``pairs`` pairs: 4 candidates per prompt give 6 pairs each."""
    make_batch(root, batch, prompts=-(-pairs // 6), per_prompt=4)


def judge(server, concurrency: int) -> OpenAIJudge:
    return OpenAIJudge(JudgeConfig(
        kind="openai", model=f"local-vlm-c{concurrency}", base_url=server.base_url, api_key="bench", concurrency=concurrency,
        timeout_s=30.0, max_side=256,
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    config = JudgingConfig(both_orders=False, max_pairs_per_prompt=0)
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="judge-bench-") as tmp,
        running_judge_server(JudgeServerState(latency_s=args.latency)) as server,
    ):
        root = DataRoot(Path(tmp)).ensure()
        prepare(root, "bench", args.pairs)
        for concurrency in args.concurrency:
            client = judge(server, concurrency)  # a distinct model name per run: nothing is cached between settings
            before = server.state.requests
            started = time.perf_counter()
            run = judge_batch(root, "bench", client, config)
            elapsed = time.perf_counter() - started
            judged = sum(r.status == "judged" for r in run.rows)
            results.append({
                "concurrency": concurrency, "pairs": len(run.rows), "judged": judged, "seconds": round(elapsed, 2),
                "pairs_per_minute": round(judged / elapsed * 60, 1), "api_calls": server.state.requests - before,
            })
        before = server.state.requests
        rerun = judge_batch(root, "bench", judge(server, args.concurrency[-1]), config)
        second = {"api_calls": server.state.requests - before, "pairs": len(rerun.rows), "from_cache": rerun.from_cache}
    print(json.dumps({
        "benchmark": "judge_throughput",
        "server": "tests/fixtures/judge_server.py (heuristic judge behind /v1/chat/completions, 127.0.0.1)",
        "injected_latency_s": args.latency,
        "orders": "one call per pair (ab only)",
        "machine": {"python": platform.python_version(), "cpu": platform.processor() or platform.machine()},
        "runs": results,
        "second_materialization": second,
    }, indent=2))


if __name__ == "__main__":
    main()
