"""Benchmark: open-set recognition of the character prototype database (known, 5-shot added, never-seen characters).

Renders a procedural character dataset, trains the classifier with the suite's own
``train_classifier`` (timm ``test_efficientnet`` at 48 px by default: minutes on a 2-core CPU),
then runs the same evaluation as the ``character_prototypes`` asset (``run_prototypes``): the
set is built from the train split and its unknown threshold calibrated for ``--far`` on renders
of characters outside training; further unseen characters are imprinted with ``add_class``
(``--shots`` images each, no gradient step) and queried with their other images; still others,
never imprinted, should come back ``unknown``. Prints JSON with, each with a 95% cluster-bootstrap
CI (clustered by character):

- ``known_accepted_correct``: test-split images of training characters answered with their class;
- ``added_accepted_correct``: queries of the 5-shot imprinted characters answered with their class;
- ``unseen_answered_unknown``: images of never-imprinted unseen characters answered ``unknown``;

under the per-class offset rule (cosine minus the class's member similarity), and the same rates
under one plain cosine threshold calibrated for the same target (``cosine_rule``, the rule before);
the headline is the first ``--far`` target, the others follow in ``other_targets`` (the trade-off).

    python benchmarks/characters_open_set.py [--characters 16] [--images 30] [--size 48] [--epochs 15] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from aesthetic_platform.characters.classifier import train_classifier
from aesthetic_platform.characters.config import ClassifierConfig, DatasetConfig, PrototypeConfig, RenderConfig
from aesthetic_platform.characters.data import prepare_dataset
from aesthetic_platform.characters.prototypes import PrototypeReport, run_prototypes
from aesthetic_platform.characters.render import render_dataset
from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store


def _rate(triple: tuple[float, float, float]) -> dict[str, float | list[float]]:
    value, low, high = triple
    return {"rate": round(value, 4), "ci95": [round(low, 4), round(high, 4)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=16)
    parser.add_argument("--images", type=int, default=30, help="images per training character")
    parser.add_argument("--size", type=int, default=48, help="image and model input side")
    parser.add_argument("--model", default="test_efficientnet", help="timm backbone of the classifier")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--far", default="0.05,0.1,0.2",
                        help="target false-accept rates on unseen characters, comma-separated; the first is the headline")
    parser.add_argument("--shots", type=int, default=5)
    parser.add_argument("--calibration-characters", type=int, default=6)
    parser.add_argument("--novel-characters", type=int, default=4)
    parser.add_argument("--unknown-characters", type=int, default=6)
    parser.add_argument("--unseen-images", type=int, default=20, help="renders per unseen character")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model-dir", default="", help="reuse a classifier saved by train_classifier (its dataset must still exist)")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="characters-open-set-") as tmp:
        work = Path(tmp)
        train_s = 0.0
        model_dir = Path(args.model_dir) if args.model_dir else work / "classifier"
        test_accuracy = None
        if not args.model_dir:
            render_dataset(work / "data", RenderConfig(characters=args.characters, images_per_character=args.images, image_size=args.size))
            prepare_dataset(work / "data", DatasetConfig())
            config = ClassifierConfig(model_name=args.model, image_size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                                      lr=args.lr, device="cpu", rotation_degrees=5, color_jitter=0.05, seed=args.seed)
            t = time.perf_counter()
            result = train_classifier(work / "data", config, model_dir)
            train_s = time.perf_counter() - t
            test_accuracy = {"rate": round(result.test.accuracy, 4), "ci95": [round(result.test.ci_low, 4), round(result.test.ci_high, 4)],
                             "chance": round(result.test.chance, 4)}
        reports = []
        t = time.perf_counter()
        with Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{work / 'store.db'}")) as store:
            for far in [float(v) for v in args.far.split(",")]:
                prototypes = PrototypeConfig(target_false_accept=far, shots=args.shots, calibration_characters=args.calibration_characters,
                                             novel_characters=args.novel_characters, unknown_test_characters=args.unknown_characters,
                                             images_per_character=args.unseen_images, device="cpu", seed=args.seed)
                reports.append(run_prototypes(store, model_dir, prototypes, work / "unseen")[0])
        prototypes_s = time.perf_counter() - t
        print(f"trained in {train_s:.0f}s, prototypes in {prototypes_s:.0f}s", file=sys.stderr)

    def rates(report: PrototypeReport) -> dict:
        cal = report.calibration
        return {
            "target_false_accept": cal.target_false_accept,
            "rule": cal.rule,
            "threshold": round(cal.threshold, 4),
            "calibration_false_accept": round(cal.false_accept, 4),
            "known_accepted_correct": _rate(report.known_accuracy),
            "added_accepted_correct": _rate(report.novel_open_accuracy),
            "unseen_answered_unknown": _rate(report.unknown_rate),
            "cosine_rule": {k: round(v, 4) for k, v in report.cosine_rule.items()},
        }

    report = reports[0]
    out = {
        "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads()},
        "setup": {"characters": report.classes, "images_per_character": args.images, "image_size": args.size, "model": args.model,
                  "epochs": args.epochs, "classifier_test_accuracy": test_accuracy, "shots": report.shots,
                  "added_characters": args.novel_characters, "added_queries": report.novel_queries,
                  "calibration_characters": args.calibration_characters, "unseen_characters": args.unknown_characters,
                  "unseen_images": report.unknown_images, "weights_unchanged": report.weights_unchanged},
        **rates(report),
        "nearest_prototype": {"known": _rate(report.known_closed_accuracy), "added": _rate(report.novel_accuracy),
                              "added_chance": round(report.novel_chance, 4)},
        "other_targets": [rates(r) for r in reports[1:]],
        "wall_s": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
