"""LoRA builder core (ingest -> dedup -> crop) on real photos; prints one JSON object.

(a) **Throughput and memory**: a 100-photo set synthesised from ``skimage.data`` photos
    (near-duplicate variants, distinct crops, a few 12 MP JPEGs and one 40 MP JPEG made by
    upscaling) goes through ingest, dedup and crop in this process; reported: wall time per
    stage, images/s, peak RSS of the process (``resource.getrusage``) and the tracemalloc
    peak of Python-side allocations.
(b) **Dedup quality**: on the near-duplicate subset (each photo plus a resized, a
    recompressed, a slightly cropped, a brightened and a horizontally flipped copy; ground
    truth: same source photo), duplicate-pair precision and recall of our clusters next to
    ``imagededup``'s PHash (its default ``max_distance_threshold`` 10, the same bit budget as
    our ``phash_max_distance``) on the same files; the same on the whole set, where each
    large file belongs with the photo it was cut from and each quadrant is its own picture.

Usage: ``python benchmarks/lora_build.py [--keep DIR] [--no-large]``.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import logging
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
import tracemalloc
import zipfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps
from skimage import data

from aesthetic_platform.lora.config import CropConfig, DedupConfig, IngestConfig
from aesthetic_platform.lora.crop import focus_and_crop
from aesthetic_platform.lora.dedup import dedup
from aesthetic_platform.lora.ingest import ingest

#: Real photographs of skimage.data (camera, coins, moon are grey; kept as such).
PHOTOS = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "camera",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "stereo_motorcycle",
    "clock",
    "brick",
    "grass",
    "gravel",
)
VARIANTS = ("original", "resized", "recompressed", "cropped", "brightened", "flipped")


def photo(name: str) -> Image.Image:
    array = getattr(data, name)()
    if isinstance(array, tuple):
        array = array[0]
    return Image.fromarray(np.asarray(array))


def variant(image: Image.Image, kind: str) -> Image.Image:
    if kind == "resized":
        return image.resize((round(image.width * 0.6), round(image.height * 0.6)), Image.Resampling.LANCZOS)
    if kind == "recompressed":
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=35)
        return Image.open(io.BytesIO(buffer.getvalue())).convert(image.mode)
    if kind == "cropped":
        dx, dy = round(image.width * 0.04), round(image.height * 0.04)
        return image.crop((dx, dy, image.width - dx, image.height - dy))
    if kind == "brightened":
        return ImageEnhance.Brightness(image).enhance(1.3)
    if kind == "flipped":
        return ImageOps.mirror(image)
    return image


def near_duplicate_set(folder: Path) -> dict[str, str]:
    """Write the photos and their variants as JPEG (q 92) to ``folder``; {file name: source photo}."""
    truth = {}
    for name in PHOTOS:
        base = photo(name)
        for kind in VARIANTS:
            file = f"{name}__{kind}.jpg"
            variant(base, kind).save(folder / file, format="JPEG", quality=92)
            truth[file] = name
    return truth


def distinct_crops(folder: Path, count: int) -> dict[str, str]:
    """Non-overlapping quadrants of the larger photos: distinct pictures, each its own ground-truth group."""
    truth: dict[str, str] = {}
    for name in ("hubble_deep_field", "retina", "stereo_motorcycle", "rocket", "coffee", "astronaut"):
        base = photo(name)
        w, h = base.width // 2, base.height // 2
        for qx, qy in itertools.product(range(2), range(2)):
            if len(truth) >= count:
                return truth
            file = f"{name}__q{qx}{qy}.jpg"
            base.crop((qx * w, qy * h, qx * w + w, qy * h + h)).resize((w * 2, h * 2), Image.Resampling.BICUBIC).save(
                folder / file, format="JPEG", quality=92
            )
            truth[file] = f"{name}-q{qx}{qy}"
    return truth


def large_photos(folder: Path, sizes: list[tuple[str, int, int]]) -> dict[str, str]:
    """Upscaled JPEGs: 12 MP (4000x3000) and 40 MP (7744x5163), each the largest left-aligned crop of one photo at that aspect."""
    truth = {}
    for name, width, height in sizes:
        file = f"{name}__{width}x{height}.jpg"
        base = photo(name).convert("RGB")
        side = min(base.width, base.height * width / height)
        box = (0, 0, round(side), round(side * height / width))
        base.crop(box).resize((width, height), Image.Resampling.BILINEAR).save(folder / file, format="JPEG", quality=90)
        truth[file] = name  # an upscaled, left-aligned crop of the photo: a duplicate of it
    return truth


def duplicate_pairs(groups: dict[str, object]) -> set[frozenset[str]]:
    by_group: dict[object, list[str]] = {}
    for file, group in groups.items():
        by_group.setdefault(group, []).append(file)
    return {frozenset(pair) for files in by_group.values() for pair in itertools.combinations(sorted(files), 2)}


def scores(predicted: set[frozenset[str]], truth: set[frozenset[str]]) -> dict[str, float | int]:
    hits = len(predicted & truth)
    return {
        "predicted_pairs": len(predicted),
        "true_pairs": len(truth),
        "correct_pairs": hits,
        "precision": round(hits / len(predicted), 4) if predicted else 1.0,
        "recall": round(hits / len(truth), 4) if truth else 1.0,
    }


def imagededup_pairs(folder: Path, files: list[str], threshold: int) -> set[frozenset[str]]:
    from imagededup.methods import PHash

    logging.getLogger("imagededup").setLevel(logging.ERROR)
    subset = Path(tempfile.mkdtemp(prefix="phash-"))
    try:
        for file in files:
            shutil.copyfile(folder / file, subset / file)
        hasher = PHash(verbose=False)
        encodings = hasher.encode_images(image_dir=str(subset), num_enc_workers=0)
        found = hasher.find_duplicates(encoding_map=encodings, max_distance_threshold=threshold, num_dist_workers=0)
    finally:
        shutil.rmtree(subset, ignore_errors=True)
    return {frozenset((a, b)) for a, dups in found.items() for b in dups if a != b}


LARGE = [("chelsea", 4000, 3000), ("coffee", 4000, 3000), ("immunohistochemistry", 4000, 3000), ("rocket", 7744, 5163)]


def generate(source: Path, archive: Path, large: list[tuple[str, int, int]]) -> tuple[dict[str, str], dict[str, str]]:
    """Write the 100 photos and their ZIP; (near-duplicate ground truth, whole ground truth)."""
    near_truth = near_duplicate_set(source)
    large_truth = large_photos(source, large)
    crops_truth = distinct_crops(source, 100 - len(near_truth) - len(large_truth))
    truth = near_truth | large_truth | crops_truth
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for file in sorted(truth):
            zf.write(source / file, file)
    return near_truth, truth


def run(keep: Path | None, include_large: bool) -> dict[str, object]:
    root = keep or Path(tempfile.mkdtemp(prefix="lora-bench-"))
    source, work = root / "photos", root / "work"
    shutil.rmtree(root, ignore_errors=True)
    source.mkdir(parents=True)
    large = LARGE if include_large else []
    started = time.perf_counter()
    # Made in a child process: encoding a 40 MP JPEG must not count towards this process's peak RSS.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        near_truth, truth = pool.submit(generate, source, root / "photos.zip", large).result()
    archive = root / "photos.zip"
    generation_s = time.perf_counter() - started
    rss_before_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    tracemalloc.start()
    stage_s: dict[str, float] = {}
    rss_after: dict[str, float] = {}
    t0 = time.perf_counter()
    ingested = ingest(archive, work, IngestConfig())
    stage_s["ingest"] = time.perf_counter() - t0
    rss_after["ingest"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    t0 = time.perf_counter()
    config = DedupConfig()
    deduped = dedup(work, config)
    stage_s["dedup"] = time.perf_counter() - t0
    rss_after["dedup"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    t0 = time.perf_counter()
    cropped = focus_and_crop(work, CropConfig())
    stage_s["crop"] = time.perf_counter() - t0
    rss_after["crop"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    total_s = sum(stage_s.values())
    peak_rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    name_of = {r.image_id: r.source_name for r in ingested.records}
    cluster_of = {name_of[d.image_id]: d.cluster for d in deduped.decisions}
    near_files = sorted(near_truth)
    truth_pairs = duplicate_pairs({f: near_truth[f] for f in near_files})
    ours = duplicate_pairs({f: cluster_of[f] for f in near_files})
    baseline = imagededup_pairs(source, near_files, threshold=config.phash_max_distance)
    ours_all = duplicate_pairs(cluster_of)
    truth_all = duplicate_pairs(truth)
    baseline_all = imagededup_pairs(source, sorted(truth), threshold=config.phash_max_distance)
    result = {
        "photos": len(truth),
        "large_jpegs": [f"{w}x{h} ({w * h / 1e6:.0f} MP)" for _, w, h in large],
        "generation_s": round(generation_s, 2),
        "stage_s": {k: round(v, 2) for k, v in stage_s.items()},
        "images_per_s": round(len(truth) / total_s, 2),
        "peak_rss_mib": round(peak_rss_kib / 1024, 1),
        "rss_peak_before_pipeline_mib": round(rss_before_kib / 1024, 1),
        "rss_peak_after_stage_mib": rss_after,
        "tracemalloc_peak_mib": round(traced_peak / 2**20, 1),
        "ingest": {"kept": ingested.kept, "skipped": ingested.skipped, "refused": ingested.refused},
        "dedup": {"kept": deduped.kept, "dropped": deduped.dropped, "clusters": deduped.clusters},
        "crop": {"cropped": cropped.cropped, "refused": cropped.refused, "by_focus": cropped.by_focus()},
        "near_duplicate_set": {
            "photos": len(PHOTOS),
            "variants": list(VARIANTS),
            "images": len(near_files),
            "ours": scores(ours, truth_pairs),
            "imagededup_phash": scores(baseline, truth_pairs),
            "ours_missed_by_variant": _missed(truth_pairs - ours),
            "imagededup_missed_by_variant": _missed(truth_pairs - baseline),
        },
        "whole_set": {
            "ours": scores(ours_all, truth_all),
            "imagededup_phash": scores(baseline_all, truth_all),
            "ours_false_pairs": sorted("|".join(sorted(pair)) for pair in ours_all - truth_all)[:10],
            "ours_missed_pairs": sorted("|".join(sorted(pair)) for pair in truth_all - ours_all)[:10],
        },
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    if keep is None:
        shutil.rmtree(root, ignore_errors=True)
    return result


def _missed(pairs: set[frozenset[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for pair in pairs:
        kinds = "+".join(sorted(file.split("__")[1].removesuffix(".jpg") for file in pair))
        counts[kinds] = counts.get(kinds, 0) + 1
    return dict(sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temporary one, removed)")
    parser.add_argument("--no-large", action="store_true", help="leave out the 12 MP and 40 MP JPEGs")
    args = parser.parse_args()
    print(json.dumps(run(args.keep, not args.no_large), indent=2))


if __name__ == "__main__":
    main()
