"""Benchmark: the character classifier against its distilled student on CPU.

Renders a procedural character dataset, trains the teacher (EfficientNet-B0 by default, random
init: no weights are downloaded), distils it into the student (MobileNetV2 by default) on the
same split, and prints JSON with, for both models: held-out accuracy with its bootstrap 95% CI
and chance, parameters, safetensors file size, and CPU images/s, both at the trained input side
and at the production side of 224 (eval mode, batch 16, random inputs, torch's default threads,
the fastest of ``--speed-repeats`` rounds).
The accuracy gap and whether it is within ``--max-gap`` close the report.

A medium config keeps it to minutes on a 2-core CPU; the defaults of the suite (224 px, 32
characters, 10 epochs) are what a GPU run uses.

    python benchmarks/characters.py [--characters 12] [--images 50] [--size 64] [--epochs 10] [--student-epochs 20]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from aesthetic_platform.characters.classifier import CharacterClassifier, train_classifier
from aesthetic_platform.characters.config import ClassifierConfig, DatasetConfig, DistillConfig, RenderConfig
from aesthetic_platform.characters.data import prepare_dataset
from aesthetic_platform.characters.distill import cpu_images_per_second, distill
from aesthetic_platform.characters.render import render_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=12)
    parser.add_argument("--images", type=int, default=50, help="images per character")
    parser.add_argument("--size", type=int, default=64, help="image and model input side")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--student-epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--teacher", default="efficientnet_b0")
    parser.add_argument("--student", default="mobilenetv2_100")
    parser.add_argument("--max-gap", type=float, default=0.1)
    parser.add_argument("--temperature", type=float, default=4.0)
    parser.add_argument("--alpha", type=float, default=0.7)
    parser.add_argument("--speed-images", type=int, default=64)
    parser.add_argument("--speed-repeats", type=int, default=5, help="timed rounds per model; the fastest counts")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines on stderr")
    args = parser.parse_args()

    def progress(stage: str):
        def report(epoch: int, metrics: dict[str, float]) -> None:
            if not args.quiet:
                import sys

                shown = {k: round(v, 4) for k, v in metrics.items() if k in ("train_loss", "train_accuracy", "val_accuracy")}
                print(f"{stage} epoch {epoch}: {shown}", file=sys.stderr, flush=True)
        return report

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="characters-bench-") as tmp:
        work = Path(tmp)
        render = RenderConfig(characters=args.characters, images_per_character=args.images, image_size=args.size)
        t = time.perf_counter()
        render_dataset(work / "data", render)
        report = prepare_dataset(work / "data", DatasetConfig())
        render_s = time.perf_counter() - t
        teacher_config = ClassifierConfig(model_name=args.teacher, image_size=args.size, epochs=args.epochs, batch_size=args.batch_size,
                                          lr=args.lr, device="cpu")
        teacher = train_classifier(work / "data", teacher_config, work / "teacher", progress=progress("teacher"))
        student_config = DistillConfig(student_model=args.student, epochs=args.student_epochs, batch_size=args.batch_size, lr=args.lr,
                                       max_gap=args.max_gap, temperature=args.temperature, alpha=args.alpha,
                                       speed_images=args.speed_images, speed_repeats=args.speed_repeats, device="cpu")
        result = distill(work / "teacher", work / "data", student_config, work / "student", progress=progress("student"))
        at_224 = {}
        for role, name in (("teacher", args.teacher), ("student", args.student)):
            model = CharacterClassifier(ClassifierConfig(model_name=name, image_size=224), teacher.classes).eval()
            at_224[role] = cpu_images_per_second(model, 224, args.speed_images, 16, args.speed_repeats)

        def figures(role: str) -> dict:
            f = getattr(result, role)
            return {
                "model": f.model_name, "parameters": f.parameters, "file_mb": round(f.file_bytes / 2**20, 3),
                "test_accuracy": round(f.test.accuracy, 4), "test_accuracy_ci95": [round(f.test.ci_low, 4), round(f.test.ci_high, 4)],
                "test_top5": round(f.test.top5, 4), f"cpu_images_per_s_at_{args.size}": round(f.cpu_images_per_s, 1),
                "cpu_images_per_s_at_224": round(at_224[role], 1),
            }

        out = {
            "machine": {"cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                        "torch": torch.__version__},
            "dataset": {"characters": args.characters, "images": report.images, "image_size": args.size, "split": report.split_sizes,
                        "render_s": round(render_s, 1)},
            "chance": round(result.teacher.test.chance, 4),
            "teacher": {**figures("teacher"), "epochs": args.epochs, "best_epoch": teacher.best_epoch,
                        "train_s": round(teacher.train_seconds, 1), "beats_chance": teacher.beats_chance()},
            "student": {**figures("student"), "epochs": args.student_epochs, "best_epoch": result.best_epoch,
                        "train_s": round(result.train_seconds, 1), "temperature": args.temperature, "alpha": args.alpha},
            "gap": round(result.gap, 4), "gap_ci95": [round(result.gap_ci[0], 4), round(result.gap_ci[1], 4)],
            "max_gap": args.max_gap, "within_max_gap": result.within_max_gap,
            "compression": round(result.compression, 2), f"cpu_speedup_at_{args.size}": round(result.speedup, 2),
            "cpu_speedup_at_224": round(at_224["student"] / at_224["teacher"], 2),
            "wall_s": round(time.perf_counter() - started, 1),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
