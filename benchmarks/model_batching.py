"""Benchmark: how to batch mixed-ratio images for the student model.

Measures forward+backward throughput (pairs/s) and the padded share of patch tokens on
one mixed-ratio stream of preference pairs (ratios drawn uniformly from the five of
seed 000), for five batching strategies:

* ``square``: every image stretched to the square native grid (what most reward models
  do after a centre crop; here a stretch, so no pixel is lost) - no padding, distorted;
* ``pad_to_max``: aspect-true grids, every image padded to the largest grid of the stream;
* ``dynamic``: aspect-true, stream order, each batch side padded only to its own max;
* ``ratio_bucketed``: aspect-true, ``RatioBucketSampler`` over (winner grid, loser grid);
* ``packed``: aspect-true, a seeded shuffle cut into batches, all images of a batch packed
  several to a row of tokens (``model/packing.py``, block-diagonal attention), one tower pass.

It also times the public ``Scorer`` on 128 mixed-ratio PIL images (decode-free, resize
included): one ``score`` call for all of them (packed) against one call per image.

Image decoding/resizing is excluded from those timings (inputs are synthetic tensors of the
right shapes). Each strategy also reports the FLOPs it executes per pair (forward+backward,
padding included, counted by ``torch.utils.flop_counter``) and the TFLOP/s that achieves at
its median rate. Runs the tiny config on CPU always; with CUDA it also runs the production
architecture (ViT-L-14 + xlm-roberta-base, random init, bf16 autocast) with peak memory.

``--end-to-end`` adds real training from PNG files: the stream's images are written to a
temporary folder, read back by ``PreferencePairDataset`` in ``DataLoader`` workers
(decode + aspect-true resize there, pinned memory on CUDA), and the model trains with
AdamW for ``--e2e-epochs`` epochs under pad_to_max, ratio_bucketed and packed batching,
each from the same initial weights. It prints pairs/s of whole optimizer steps including
the input pipeline, and each strategy's loss trajectory (mean objective per epoch) next to
ratio bucketing under another shuffle seed: the gap a mere reshuffle makes is the noise
the strategies' trajectories are compared against. The teacher's scores are a learnable
function of the pixels (each dimension a colour channel's mean brightness), so the loss
falls and the trajectories mean something.

    python benchmarks/model_batching.py [--pairs 512] [--batch-size 16] [--repeats 3] [--end-to-end]
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import random
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aesthetic_platform.generation.sizes import size_for_ratio
from aesthetic_platform.model import AestheticScorer, named_config
from aesthetic_platform.model.batching import Grid, RatioBucketSampler, padded_token_fraction, patch_grid
from aesthetic_platform.model.loss import CombinedRankingLoss
from aesthetic_platform.model.packing import PackedPairSampler, default_token_budget, pack_lengths, packed_padding, tokens_for
from aesthetic_platform.model.train_step import PackedPairCollator, PairCollator, PairExample, PreferencePairDataset, pair_loss
from aesthetic_platform.schemas import RATIOS
from aesthetic_platform.scoring import Scorer

SOURCE_PIXELS = 1024 * 1024  # generator output size the stream imitates
WARMUP_BATCHES = 2
PROMPTS = ("国潮风格的月饼礼盒海报，红色与金色，居中构图", "a minimalist blue coffee poster, rule-of-thirds composition")
STRATEGIES = ("square", "pad_to_max", "dynamic", "ratio_bucketed", "packed")
SCORER_IMAGES = 128
SCORER_SOURCE_PIXELS = 512 * 512
E2E_SOURCE_PIXELS = 512 * 512  # PNG sources read back in the end-to-end mode
E2E_STRATEGIES = ("pad_to_max", "ratio_bucketed", "packed")
E2E_LEARNING_RATE = 1e-3


def mixed_ratio_stream(pairs: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    ratios = list(RATIOS)
    return [(rng.choice(ratios), rng.choice(ratios)) for _ in range(pairs)]


def grids_for(stream: list[tuple[str, str]], budget: int, strategy: str) -> list[tuple[Grid, Grid]]:
    if strategy == "square":
        side = math.isqrt(budget)
        return [((side, side), (side, side)) for _ in stream]

    def grid(ratio: str) -> Grid:
        return patch_grid(*size_for_ratio(ratio, SOURCE_PIXELS), budget)

    return [(grid(winner), grid(loser)) for winner, loser in stream]


def batches_for(
    grids: list[tuple[Grid, Grid]], batch_size: int, strategy: str, seed: int, token_budget: int
) -> list[list[int]]:
    if strategy == "ratio_bucketed":
        return RatioBucketSampler(grids, batch_size=batch_size, seed=seed).batches()
    if strategy == "packed":
        return PackedPairSampler(grids, batch_size, token_budget, seed=seed).batches()
    return [list(range(start, min(start + batch_size, len(grids)))) for start in range(0, len(grids), batch_size)]


def global_canvas(grids: list[tuple[Grid, Grid]]) -> Grid:
    """Grid every image is padded to under ``pad_to_max`` (its real grid stays in the mask)."""
    return max(grid[0] for pair in grids for grid in pair), max(grid[1] for pair in grids for grid in pair)


def _image(grid: Grid, patch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(3, grid[0] * patch, grid[1] * patch, generator=generator)


def make_batches(model, grids, batches, strategy, dims, seed):
    """Collated ``PairBatch``es; for pad_to_max every side is padded to the stream's largest grid."""
    patch = model.preprocess.patch_size
    generator = torch.Generator().manual_seed(seed)
    collate = PackedPairCollator.for_model(model) if strategy == "packed" else PairCollator.for_model(model)
    canvas = global_canvas(grids) if strategy == "pad_to_max" else None
    collated = []
    for indices in batches:
        examples = [
            PairExample(
                winner=_image(grids[i][0], patch, generator),
                loser=_image(grids[i][1], patch, generator),
                prompt=PROMPTS[i % len(PROMPTS)],
                teacher_winner=torch.full((dims,), 8.0),
                teacher_loser=torch.full((dims,), 4.0),
            )
            for i in indices
        ]
        batch = collate(examples)
        if canvas is not None:
            batch.winners = _pad_to(batch.winners, canvas, patch)
            batch.losers = _pad_to(batch.losers, canvas, patch)
        collated.append(batch)
    return collated


def _pad_to(images, canvas: Grid, patch: int):
    rows, cols = images.patch_mask.shape[1:]
    pad_rows, pad_cols = canvas[0] - rows, canvas[1] - cols
    images.pixels = torch.nn.functional.pad(images.pixels, (0, pad_cols * patch, 0, pad_rows * patch))
    images.patch_mask = torch.nn.functional.pad(images.patch_mask, (0, pad_cols, 0, pad_rows), value=False)
    return images


def time_forward_backward(model, batches, device, autocast_dtype) -> tuple[float, int]:
    """Seconds for forward+backward over all batches after warm-up, and pairs timed."""
    loss_fn = CombinedRankingLoss(model.dimensions)
    model.train()
    for batch in batches[:WARMUP_BATCHES]:
        forward_backward(model, batch, loss_fn, device, autocast_dtype)
    _sync(device)
    timed = batches[WARMUP_BATCHES:] or batches
    started = time.perf_counter()
    for batch in timed:
        forward_backward(model, batch, loss_fn, device, autocast_dtype)
    _sync(device)
    return time.perf_counter() - started, sum(len(batch) for batch in timed)


def forward_backward(model, batch, loss_fn, device, autocast_dtype) -> None:
    """One pair batch through the model and back (gradients only: what every strategy is timed and counted on)."""
    model.zero_grad(set_to_none=True)
    with torch.autocast(device_type=device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
        loss = pair_loss(model, batch.to(device), loss_fn).loss.objective
    loss.backward()


def count_flops(model, batches, device, autocast_dtype) -> int:
    """Floating-point operations of one forward+backward over ``batches``, as executed (padding included).

    Counted by ``torch.utils.flop_counter`` from the matmuls and attention the run dispatches, so
    achieved TFLOP/s = this / seconds of the same batches."""
    from torch.utils.flop_counter import FlopCounterMode

    _count_cpu_attention()
    loss_fn = CombinedRankingLoss(model.dimensions)
    model.train()
    with FlopCounterMode(display=False) as counter:
        for batch in batches:
            forward_backward(model, batch, loss_fn, device, autocast_dtype)
    model.zero_grad(set_to_none=True)
    return int(counter.get_total_flops())


def _count_cpu_attention() -> None:
    """The flop counter knows the CUDA attention kernels; SDPA on CPU dispatches its own, counted here by the same formula."""
    from torch.utils import flop_counter

    def forward(query, key, value, *_args, out_shape=None, **_kwargs) -> int:
        return flop_counter.sdpa_flop_count(query, key, value)

    def backward(grad_out, query, key, value, *_args, out_shape=None, **_kwargs) -> int:
        return flop_counter.sdpa_backward_flop_count(grad_out, query, key, value)

    aten = torch.ops.aten
    for op, formula in ((aten._scaled_dot_product_flash_attention_for_cpu, forward),
                        (aten._scaled_dot_product_flash_attention_for_cpu_backward, backward)):
        if op not in flop_counter.flop_registry:
            flop_counter.register_flop_formula(op)(formula)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def padded_fraction_for(grids, batches, strategy: str, token_budget: int) -> float:
    """Padded share of patch tokens the transformer actually processes under ``strategy``."""
    if strategy == "packed":
        padded = patches = 0
        for batch in batches:
            lengths = [tokens_for(grids[index][side]) for side in range(2) for index in batch]
            batch_padded, batch_patches = packed_padding(lengths, pack_lengths(lengths, token_budget))
            padded, patches = padded + batch_padded, patches + batch_patches
        return padded / (padded + patches)
    if strategy != "pad_to_max":
        return padded_token_fraction(batches, grids)
    real = sum(rows * cols for pair in grids for rows, cols in pair)
    rows, cols = global_canvas(grids)
    return 1 - real / (sum(len(pair) for pair in grids) * rows * cols)


def run_config(config_name: str, pairs: int, batch_size: int, repeats: int, seed: int, device: torch.device,
               autocast_dtype: torch.dtype | None) -> dict:
    """Strategies are timed round-robin ``repeats`` times; the median and best run are reported
    (a shared machine's noise hits every strategy alike)."""
    torch.manual_seed(seed)
    model = AestheticScorer(named_config(config_name), load_pretrained=False).to(device)
    budget = model.config.image.patch_budget
    token_budget = default_token_budget(budget)
    stream = mixed_ratio_stream(pairs, seed)
    prepared, results = {}, {}
    for strategy in STRATEGIES:
        grids = grids_for(stream, budget, strategy)
        batches = batches_for(grids, batch_size, strategy, seed, token_budget)
        prepared[strategy] = make_batches(model, grids, batches, strategy, len(model.dimensions), seed)
        results[strategy] = {
            "padded_token_fraction": round(padded_fraction_for(grids, batches, strategy, token_budget), 4),
            "batches": len(batches),
            "aspect_preserved": strategy != "square",
        }
    timings: dict[str, list[float]] = {strategy: [] for strategy in STRATEGIES}
    for _ in range(repeats):
        for strategy in STRATEGIES:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds, timed_pairs = time_forward_backward(model, prepared[strategy], device, autocast_dtype)
            timings[strategy].append(timed_pairs / seconds)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated(device) / 2**30
                results[strategy]["peak_memory_gib"] = round(max(peak, results[strategy].get("peak_memory_gib", 0)), 2)
            results[strategy]["timed_pairs_per_run"] = timed_pairs
    for strategy, rates in timings.items():
        results[strategy]["pairs_per_s_median"] = round(statistics.median(rates), 2)
        results[strategy]["pairs_per_s_best"] = round(max(rates), 2)
        timed = prepared[strategy][WARMUP_BATCHES:] or prepared[strategy]  # the batches the rates are over
        flops_per_pair = count_flops(model, timed, device, autocast_dtype) / results[strategy]["timed_pairs_per_run"]
        results[strategy]["gflop_per_pair"] = round(flops_per_pair / 1e9, 4)  # executed, padding included
        results[strategy]["achieved_tflops_median"] = round(flops_per_pair * statistics.median(rates) / 1e12, 4)
    packed = results["packed"]["pairs_per_s_median"]
    speedups = {f"packed_vs_{other}": round(packed / results[other]["pairs_per_s_median"], 3)
                for other in ("pad_to_max", "ratio_bucketed", "dynamic", "square")}
    return {
        "config": config_name,
        "device": str(device),
        "dtype": str(autocast_dtype).replace("torch.", "") if autocast_dtype else "float32",
        "patch_budget": budget,
        "patch_size": model.preprocess.patch_size,
        "pairs": pairs,
        "batch_size": batch_size,
        "repeats": repeats,
        "token_budget_packed": token_budget,
        "strategies": results,
        "speedup_median": speedups,
    }


def scorer_images(count: int, seed: int) -> list[Image.Image]:
    """``count`` noise images cycling through the five ratios (each a different size)."""
    generator = np.random.default_rng(seed)
    ratios = list(RATIOS)
    images = []
    for index in range(count):
        width, height = size_for_ratio(ratios[index % len(ratios)], SCORER_SOURCE_PIXELS - 97 * index)
        images.append(Image.fromarray(generator.integers(0, 256, (height, width, 3), dtype=np.uint8)))
    return images


def run_scorer(config_name: str, count: int, repeats: int, seed: int, device: torch.device) -> dict:
    """images/s of ``Scorer.score``: one call for all ``count`` images vs one call per image (best of ``repeats``)."""
    torch.manual_seed(seed)
    scorer = Scorer(AestheticScorer(named_config(config_name), load_pretrained=False), device=device)
    images = scorer_images(count, seed)
    prompts = [PROMPTS[index % len(PROMPTS)] for index in range(count)]
    scorer.score(images[:4], prompts[:4])  # warm-up
    batched, single, prepare, model_only = [], [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        tensors = [scorer._prepare(image, index) for index, image in enumerate(images)]
        prepare.append(count / (time.perf_counter() - started))
        model_only.append(count / time_model_only(scorer, tensors, prompts))
        started = time.perf_counter()
        scorer.score(images, prompts)
        batched.append(count / (time.perf_counter() - started))
        started = time.perf_counter()
        for image, prompt in zip(images, prompts, strict=True):
            scorer.score(image, prompt)
        single.append(count / (time.perf_counter() - started))
    # Batching removes per-call overhead, not work: each image still costs one resize and its share of
    # the model. With that work spread over every core, one call per image can be beaten by at most:
    work_s_per_image = 1 / max(prepare) + 1 / max(model_only)
    cores = min(os.cpu_count() or 1, scorer.prepare_workers + 1)
    return {
        "config": config_name,
        "device": str(device),
        "images": count,
        "distinct_sizes": len({image.size for image in images}),
        "batch_size": scorer.batch_size,
        "batched_images_per_s": round(max(batched), 2),
        "one_per_call_images_per_s": round(max(single), 2),
        "batched_vs_one_per_call": round(max(batched) / max(single), 2),
        # the aspect-true resize alone, included in both rates above: batching cannot make it cheaper
        "resize_only_images_per_s": round(max(prepare), 2),
        # the packed model alone on prepared tensors, in chunks of batch_size (one thread)
        "model_only_images_per_s": round(max(model_only), 2),
        "cores_used": cores,
        "ceiling_batched_vs_one_per_call": round((1 / max(single)) / (work_s_per_image / cores), 2),
    }


@torch.no_grad()
def time_model_only(scorer: Scorer, tensors: list[torch.Tensor], prompts: list[str]) -> float:
    """Seconds to score already prepared tensors the way ``Scorer.score`` chunks them."""
    started = time.perf_counter()
    distinct = list(dict.fromkeys(prompts))
    text_features = scorer._encode_prompts(distinct)
    rows = torch.tensor([distinct.index(prompt) for prompt in prompts])
    for indices in scorer._batches(len(tensors)):
        scorer._score_batch([tensors[index] for index in indices], text_features[rows[indices]])
    return time.perf_counter() - started


# --- end to end from PNG files: input pipeline + optimizer steps + loss trajectory ----------


@dataclass
class FilePair:
    """The fields of a ``PreferencePair`` that ``PreferencePairDataset`` reads."""

    image_winner_path: str
    image_loser_path: str
    prompt: str
    scores: dict


def write_stream_pngs(stream: list[tuple[str, str]], folder: Path, dimensions: tuple[str, ...], seed: int) -> list[FilePair]:
    """One PNG per image of the stream; the teacher scores each dimension by one channel's mean brightness."""
    rng = np.random.default_rng(seed)
    pairs = []
    for index, ratios in enumerate(stream):
        sides = []
        for side, ratio in enumerate(ratios):
            width, height = size_for_ratio(ratio, E2E_SOURCE_PIXELS)
            level = rng.uniform(0.1, 0.9, size=3)
            pixels = np.clip(level * 255 + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
            path = folder / f"{index:05d}_{side}.png"
            Image.fromarray(pixels).save(path, compress_level=1)
            sides.append((str(path), {dim: 1 + 9 * float(level[position % 3]) for position, dim in enumerate(dimensions)}))
        (a_path, a_scores), (b_path, b_scores) = sides
        winner_first = a_scores[dimensions[0]] >= b_scores[dimensions[0]]
        (w_path, w_scores), (l_path, l_scores) = sides if winner_first else sides[::-1]
        scores = {dim: {"winner": w_scores[dim], "loser": l_scores[dim]} for dim in dimensions}
        pairs.append(FilePair(w_path, l_path, PROMPTS[index % len(PROMPTS)], scores))
    return pairs


class PadToCanvas:
    """``PairCollator`` whose both sides are then padded to one fixed canvas: pad-to-max as a collate_fn."""

    def __init__(self, collate: PairCollator, canvas: Grid) -> None:
        self.collate, self.canvas = collate, canvas

    def __call__(self, examples):
        batch = self.collate(examples)
        batch.winners = _pad_to(batch.winners, self.canvas, self.collate.patch_size)
        batch.losers = _pad_to(batch.losers, self.canvas, self.collate.patch_size)
        return batch


def _e2e_collate(model, strategy: str, grids):
    if strategy == "packed":
        return PackedPairCollator.for_model(model)
    if strategy == "pad_to_max":
        return PadToCanvas(PairCollator.for_model(model), global_canvas(grids))
    return PairCollator.for_model(model)


def train_from_files(initial, dataset, grids, strategy: str, batch_size: int, epochs: int, seed: int,
                     workers: int, device: torch.device) -> dict:
    """AdamW epochs from ``initial``'s weights; pairs/s of whole steps (decode in workers included), loss per epoch."""
    model = copy.deepcopy(initial).to(device).train()
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=E2E_LEARNING_RATE)
    loss_fn = CombinedRankingLoss(model.dimensions)
    token_budget = default_token_budget(model.config.image.patch_budget)
    epoch_losses, seconds, pairs_done = [], 0.0, 0
    for epoch in range(epochs):
        batches = batches_for(grids, batch_size, strategy, seed + epoch, token_budget)
        loader = torch.utils.data.DataLoader(
            dataset, batch_sampler=batches, collate_fn=_e2e_collate(model, strategy, grids), num_workers=workers,
            pin_memory=device.type == "cuda", generator=torch.Generator().manual_seed(seed),
        )
        losses = []
        batches_in = iter(loader)  # worker processes start here, outside the timed steps
        started = time.perf_counter()
        for batch in batches_in:
            loss = pair_loss(model, batch.to(device), loss_fn).loss.objective
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append((float(loss.detach()), len(batch)))
        _sync(device)
        seconds += time.perf_counter() - started
        pairs_done += len(dataset)
        epoch_losses.append(sum(value * count for value, count in losses) / sum(count for _, count in losses))
    return {"pairs_per_s": round(pairs_done / seconds, 2), "loss_per_epoch": [round(value, 4) for value in epoch_losses]}


def run_end_to_end(config_name: str, pairs: int, batch_size: int, epochs: int, workers: int, seed: int,
                   device: torch.device) -> dict:
    """Training from PNG files under each strategy, same initial weights; a reshuffled bucketing run as the noise yardstick."""
    torch.manual_seed(seed)
    initial = AestheticScorer(named_config(config_name), load_pretrained=False)
    stream = mixed_ratio_stream(pairs, seed)
    with tempfile.TemporaryDirectory(prefix="model-batching-e2e-") as folder:
        dataset = PreferencePairDataset(write_stream_pngs(stream, Path(folder), initial.dimensions, seed), initial)
        grids = dataset.item_grids()
        runs = {strategy: train_from_files(initial, dataset, grids, strategy, batch_size, epochs, seed, workers, device)
                for strategy in E2E_STRATEGIES}
        reshuffled = train_from_files(initial, dataset, grids, "ratio_bucketed", batch_size, epochs, seed + 1000, workers, device)

    def gap(a: list[float], b: list[float]) -> float:
        return round(max(abs(x - y) for x, y in zip(a, b, strict=True)), 4)

    reference = runs["ratio_bucketed"]["loss_per_epoch"]
    return {
        "config": config_name,
        "device": str(device),
        "pairs": pairs,
        "batch_size": batch_size,
        "epochs": epochs,
        "data_workers": workers,
        "source_pixels": E2E_SOURCE_PIXELS,
        "strategies": runs,
        "ratio_bucketed_reshuffled": reshuffled,
        "loss_gap_vs_ratio_bucketed": {strategy: gap(run["loss_per_epoch"], reference) for strategy, run in runs.items()},
        "loss_gap_of_a_reshuffle": gap(reshuffled["loss_per_epoch"], reference),
        "speedup": {f"packed_vs_{other}": round(runs["packed"]["pairs_per_s"] / runs[other]["pairs_per_s"], 3)
                    for other in ("pad_to_max", "ratio_bucketed")},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu-pairs", type=int, default=512)
    parser.add_argument("--gpu-batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scorer-images", type=int, default=SCORER_IMAGES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--cpu-threads", type=int, default=1,
        help="torch intra-op threads; 1 keeps OpenMP barriers from stalling on a shared machine",
    )
    parser.add_argument("--end-to-end", action="store_true", help="also train from PNG files (decode in DataLoader workers)")
    parser.add_argument("--e2e-pairs", type=int, default=256)
    parser.add_argument("--e2e-epochs", type=int, default=3)
    parser.add_argument("--e2e-workers", type=int, default=2, help="DataLoader worker processes for the end-to-end mode")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.cpu_threads)
    report = {
        "benchmark": "model_batching",
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(),
        "cuda_available": torch.cuda.is_available(),
        "tiny_cpu": run_config("tiny", args.pairs, args.batch_size, args.repeats, args.seed, torch.device("cpu"), None),
        "scorer_tiny_cpu": run_scorer("tiny", args.scorer_images, args.repeats, args.seed, torch.device("cpu")),
    }
    if args.end_to_end:
        report["tiny_cpu_end_to_end"] = run_end_to_end(
            "tiny", args.e2e_pairs, args.batch_size, args.e2e_epochs, args.e2e_workers, args.seed, torch.device("cpu")
        )
    if torch.cuda.is_available():
        report["gpu"] = torch.cuda.get_device_name(0)
        report["vit_l_14_xlmr_base_cuda"] = run_config(
            "vit-l-14-xlmr-base-random", args.gpu_pairs, args.gpu_batch_size, args.repeats, args.seed,
            torch.device("cuda"), torch.bfloat16,
        )
    else:
        report["vit_l_14_xlmr_base_cuda"] = {"skipped": "CUDA not available on this machine; code path not run"}
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
