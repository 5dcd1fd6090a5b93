"""How long a person waits in the workbench: Next with and without prefetch, and Submit.

Runs the real app in-process over a throwaway data root with the built-in poster
renderer (the embedded default; a diffusers model only makes the cold number larger
and the prefetched one no different). Prints one JSON object.

    python benchmarks/workbench_latency.py [--prompts 6] [--seeds-per-batch 8] [--pixel-budget 262144]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from fastapi.testclient import TestClient

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.workbench.app import create_app

POLL_S = 0.01


def _timed(call) -> tuple[float, dict]:
    started = time.perf_counter()
    body = call()
    return (time.perf_counter() - started) * 1000, body


def _wait_for_prefetch(client: TestClient) -> None:
    while not all(p["ready"] for p in client.get("/state").json()["prefetch"]):
        time.sleep(POLL_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=6)
    parser.add_argument("--seeds-per-batch", type=int, default=8, help="images shown and judged together")
    parser.add_argument("--pixel-budget", type=int, default=512 * 512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="workbench-bench-") as folder:
        root = DataRoot(Path(folder)).ensure()
        prompts = "text\n" + "\n".join(f"A poster of a red sneaker number {i}" for i in range(args.prompts)) + "\n"
        cold, warm, submit = [], [], []
        with TestClient(create_app(root, "bench", scorer=None)) as client:
            client.post("/upload_prompts", files={"file": ("bench.csv", prompts.encode(), "text/csv")}).raise_for_status()
            settings = {"pixel_budget": args.pixel_budget, "seeds_per_batch": args.seeds_per_batch}
            client.post("/init_model", json=settings).raise_for_status()
            for index in range(args.prompts):
                client.post("/get_next_prompt").raise_for_status()
                if index % 2 == 0:
                    # re-initialising drops the prefetched batch: this is what Next costs without prefetch
                    client.post("/init_model", json=settings).raise_for_status()
                else:
                    _wait_for_prefetch(client)  # the person is still judging the previous batch
                ms, batch = _timed(lambda: client.post("/generate_batch").json())
                (warm if batch["prefetched"] else cold).append(ms)
                seeds = [image["seed"] for image in batch["images"]]
                selection = {"batch_id": batch["batch_id"], "golden_seeds": seeds[:1]}
                ms, _ = _timed(lambda body=selection: client.post("/submit_selection", json=body).json())
                submit.append(ms)
    print(json.dumps({
        "benchmark": "workbench_latency",
        "generator": "poster-renderer/v1",
        "seeds_per_batch": args.seeds_per_batch,
        "pixel_budget": args.pixel_budget,
        "next_without_prefetch_ms_median": round(statistics.median(cold), 1),
        "next_with_prefetch_ms_median": round(statistics.median(warm), 1),
        "submit_ms_median": round(statistics.median(submit), 1),
        "samples": {"cold": len(cold), "prefetched": len(warm), "submit": len(submit)},
    }))


if __name__ == "__main__":
    main()
