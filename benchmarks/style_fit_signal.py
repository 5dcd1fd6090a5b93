"""Benchmark: is the heuristic judge's signal in the pixels the student sees, and can the student's tower learn it?

When a dimension stays at chance on same-ratio pairs while the judge is consistent (the
evaluation report's "Dimensions at chance" section), two explanations remain: the student
does not see what the judge rewards (the aspect-true resize to the patch budget removes
it), or it sees it and cannot learn it at this scale. On a data root judged by the
heuristic judge (the demo's), this prints JSON with:

* ``judge_on_student_view``: per dimension, the share of the judge's decisive same-ratio
  verdicts (val and test pairs, gap above ``--tie-threshold``) it reproduces when it is
  shown each image as the student gets it (resized to the model's patch budget). Near 100%:
  the information is in the student's input.
* ``finish``: the judge's noise estimate (Immerkær's sigma, the ``finish`` half of
  ``style_fit``) per image, its range in grey levels, how well the same fixed estimator
  applied to the student's view predicts it (held-out R², the ceiling), and how well the
  student's image tower learns it when trained on exactly that target (held-out R² per
  epoch). A learnable quantity for contrast: the judge's RMS/subject ``contrast``.

The tower is the model config's image tower from random init with a linear head, trained by
mean squared error on standardised targets (AdamW, lr ``--lr``, batch 32) over the train
split's images and scored on the test split's: the same images, sizes and tower the student
trains on, with the signal handed over directly instead of through pairs.

    python benchmarks/style_fit_signal.py --home ~/.aesthetic [--images 1200] [--epochs 10]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from aesthetic_platform.images import load_image
from aesthetic_platform.judging import heuristic
from aesthetic_platform.model.batching import prepare_image, resize_to_budget
from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.packing import default_token_budget, pack_images
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.training.data import load_pair_splits

JUDGE_SCALE = 9.0  # unit scores map linearly onto the judge's 1-10 scale
TRAIN_BATCH = 32
SCORE_BATCH = 64


def student_view(image: Image.Image, patch_size: int, patch_budget: int) -> Image.Image:
    """The image as the student's tower receives it: aspect-true, resized to the patch budget."""
    return Image.fromarray(resize_to_budget(image, patch_size, patch_budget).permute(1, 2, 0).numpy())


def judge_on_student_view(pairs: Sequence, patch_size: int, patch_budget: int, tie_threshold: float) -> dict[str, dict[str, float]]:
    full: dict[str, dict[str, float]] = {}
    seen: dict[str, dict[str, float]] = {}
    for pair in pairs:
        for path in (pair.image_winner_path, pair.image_loser_path):
            if path not in full:
                image = load_image(path)
                full[path] = heuristic.unit_scores(image, pair.prompt)
                seen[path] = heuristic.unit_scores(student_view(image, patch_size, patch_budget), pair.prompt)
    out = {}
    for dim in heuristic.HEURISTIC_DIMENSIONS:
        agree = []
        for pair in pairs:
            w, lo = pair.image_winner_path, pair.image_loser_path
            gap = full[w][dim] - full[lo][dim]
            if abs(gap) * JUDGE_SCALE > tie_threshold:
                agree.append(np.sign(seen[w][dim] - seen[lo][dim]) == np.sign(gap))
        out[dim] = {"decisive_pairs": len(agree), "reproduced": round(float(np.mean(agree)), 4) if agree else float("nan")}
    return out


def luminance_sigma(image: Image.Image) -> float:
    """The judge's noise estimate, the one its ``finish`` sub-score reads."""
    return float(heuristic.luminance_noise(heuristic.analyse(image)))


def held_out_r2(truth: np.ndarray, predicted: np.ndarray) -> float:
    return float(1 - ((truth - predicted) ** 2).mean() / truth.var())


def linear_fit_r2(feature_train: np.ndarray, y_train: np.ndarray, feature_test: np.ndarray, y_test: np.ndarray) -> float:
    design = np.stack([feature_train, np.ones_like(feature_train)], 1)
    coef = np.linalg.lstsq(design, y_train, rcond=None)[0]
    return held_out_r2(y_test, np.stack([feature_test, np.ones_like(feature_test)], 1) @ coef)


def tower_learning_curve(
    model_name: str, train: dict[str, float], test: dict[str, float], epochs: int, lr: float, seed: int
) -> list[float]:
    """Held-out R² after each epoch of the random-init image tower (+ linear head) regressing the target directly."""
    torch.manual_seed(seed)
    model = AestheticScorer(named_config(model_name), load_pretrained=False)
    head = torch.nn.Linear(model.config.projection_dim, 1)
    params = [*model.visual.parameters(), *model.image_projection.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr)
    budget = model.config.image.patch_budget
    prepared = {path: prepare_image(path, model.preprocess, budget) for path in [*train, *test]}
    mean, std = float(np.mean(list(train.values()))), float(np.std(list(train.values())))

    def predict(paths: Sequence[str]) -> torch.Tensor:
        packed = pack_images([prepared[p] for p in paths], model.preprocess.patch_size, default_token_budget(budget))
        return head(model.encode_images(packed)).squeeze(-1)

    train_paths, test_paths = list(train), list(test)
    truth = np.array([(test[p] - mean) / std for p in test_paths])
    curve = []
    for epoch in range(epochs):
        model.train()
        order = np.random.default_rng(seed + epoch).permutation(len(train_paths))
        for start in range(0, len(order), TRAIN_BATCH):
            batch = [train_paths[i] for i in order[start : start + TRAIN_BATCH]]
            target = torch.tensor([(train[p] - mean) / std for p in batch], dtype=torch.float32)
            loss = torch.nn.functional.mse_loss(predict(batch), target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([predict(test_paths[i : i + SCORE_BATCH]) for i in range(0, len(test_paths), SCORE_BATCH)]).numpy()
        curve.append(round(held_out_r2(truth, predicted), 4))
    return curve


def per_image(paths: Sequence[str], measure: Callable[[Image.Image], float]) -> dict[str, float]:
    return {path: measure(load_image(path)) for path in paths}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="a data root judged by the heuristic judge (e.g. the demo's)")
    parser.add_argument("--model", default="tiny", help="model config whose image tower is probed")
    parser.add_argument("--images", type=int, default=1200, help="most train-split images for the tower probe")
    parser.add_argument("--test-images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tie-threshold", type=float, default=0.5, help="judge-scale gap under which a verdict is a tie")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    root = DataRoot(args.home)
    splits = load_pair_splits(root.table("preference_pairs"), root=root)
    config = named_config(args.model)
    patch_size = AestheticScorer(config, load_pretrained=False).preprocess.patch_size
    held_out = [p for p in [*splits.val, *splits.test] if p.pair_kind == "same_ratio"]

    def images_of(pairs: Sequence, limit: int) -> list[str]:
        paths = sorted({path for p in pairs for path in (p.image_winner_path, p.image_loser_path)})
        return paths[:limit]

    train_paths, test_paths = images_of(splits.train, args.images), images_of(splits.test, args.test_images)
    sigma = per_image([*train_paths, *test_paths], luminance_sigma)
    view_sigma = per_image(
        [*train_paths, *test_paths], lambda image: luminance_sigma(student_view(image, patch_size, config.image.patch_budget))
    )
    contrast = per_image([*train_paths, *test_paths], lambda image: heuristic.color_parts(heuristic.analyse(image))["contrast"])
    pick = lambda values, paths: {p: values[p] for p in paths}  # noqa: E731
    as_array = lambda values, paths: np.array([values[p] for p in paths])  # noqa: E731
    report = {
        "benchmark": "style_fit_signal",
        "home": str(args.home),
        "model": args.model,
        "patch_budget": config.image.patch_budget,
        "judge_on_student_view": judge_on_student_view(held_out, patch_size, config.image.patch_budget, args.tie_threshold),
        "finish": {
            "images": {"train": len(train_paths), "test": len(test_paths)},
            "sigma_grey_levels_percentiles": dict(
                zip(("p10", "p50", "p90"), np.percentile(list(sigma.values()), [10, 50, 90]).round(2).tolist(), strict=True)
            ),
            "fixed_estimator_on_student_view_r2": round(
                linear_fit_r2(
                    as_array(view_sigma, train_paths), as_array(sigma, train_paths),
                    as_array(view_sigma, test_paths), as_array(sigma, test_paths),
                ),
                4,
            ),
            "tower_trained_on_it_r2_per_epoch": tower_learning_curve(
                args.model, pick(sigma, train_paths), pick(sigma, test_paths), args.epochs, args.lr, args.seed
            ),
        },
        "contrast": {
            "tower_trained_on_it_r2_per_epoch": tower_learning_curve(
                args.model, pick(contrast, train_paths), pick(contrast, test_paths), args.epochs, args.lr, args.seed
            ),
        },
        "seconds": 0.0,
        "machine": {"platform": platform.platform(), "torch_threads": torch.get_num_threads()},
    }
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
