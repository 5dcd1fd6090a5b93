"""Images per second through ``Scorer.score``: one batched call vs one call per image.

    PYTHONPATH=. .venv/bin/python benchmarks/scoring_throughput.py [--images 128] [--model tiny|PATH]

Prints one JSON object. The images are PosterRenderer candidates over all five ratios at
the demo's pixel budget; a named config is built with random weights (the speed does not
depend on the weights), a path is loaded with ``from_pretrained``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from aesthetic_platform.generation import GenerationRequest, PosterRenderer, size_for_ratio
from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.prompts.grammar import grammar_prompts
from aesthetic_platform.schemas import RATIOS
from aesthetic_platform.scoring import Scorer


def _images(count: int, pixel_budget: int, folder: Path) -> tuple[list[str], list[str]]:
    prompts = [p.text for p in grammar_prompts("bench", max(1, count // 4))]
    requests = []
    for i in range(count):
        width, height = size_for_ratio(list(RATIOS)[i % len(RATIOS)], pixel_budget)
        requests.append(GenerationRequest(prompts[i % len(prompts)], i, width, height))
    paths = []
    for request, image in zip(requests, PosterRenderer().generate(requests), strict=True):
        path = folder / f"{request.seed}.png"
        image.save(path)
        paths.append(str(path))
    return paths, [r.prompt for r in requests]


def _timed(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--pixel-budget", type=int, default=128 * 128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if Path(args.model).is_dir():
        scorer = Scorer.from_pretrained(args.model, batch_size=args.batch_size)
    else:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        scorer = Scorer(AestheticScorer(named_config(args.model)).to(device), device=device, batch_size=args.batch_size)
    with tempfile.TemporaryDirectory() as folder:
        paths, prompts = _images(args.images, args.pixel_budget, Path(folder))
        scorer.score(paths[:4], prompts[:4])  # warm-up
        batched = _timed(lambda: scorer.score(paths, prompts), args.repeats)
        single = _timed(lambda: [scorer.score([p], [t]) for p, t in zip(paths, prompts, strict=True)], args.repeats)
    print(json.dumps({
        "benchmark": "scoring_throughput", "model": args.model, "device": str(scorer.device),
        "images": args.images, "batch_size": args.batch_size, "pixel_budget": args.pixel_budget,
        "torch_threads": torch.get_num_threads(),
        "batched_images_per_s": round(args.images / batched, 1),
        "per_image_calls_images_per_s": round(args.images / single, 1),
        "speedup": round(single / batched, 2),
    }))


if __name__ == "__main__":
    main()
