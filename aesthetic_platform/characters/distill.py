"""Distilling the character classifier into a small student (seed 002 §3.1), MobileNetV2 by default.

The teacher is frozen; on every training batch it sees the same augmented images as the
student and its temperature-softened probabilities are the soft targets. The student's loss is
``alpha · T² · KL(student_T ‖ teacher_T) + (1 - alpha) · CE(student, label)`` (Hinton et al.;
the T² keeps the soft term's gradient scale independent of T). The student is checkpointed by
validation accuracy on the teacher's own split, then both models are measured on the same test
images: accuracy with bootstrap CIs, the paired gap and its CI, parameter counts, file sizes
and CPU images/s. ``DistillConfig.max_gap`` is the accepted gap; the result says if it holds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aesthetic_platform.atomic import write_json
from aesthetic_platform.characters.classifier import (
    RESULT_FILE,
    WEIGHTS_FILE,
    CharacterClassifier,
    Evaluation,
    check_split,
    evaluation_of,
    predict_logits,
    resolve_device,
    seed_everything,
    split_loaders,
)
from aesthetic_platform.characters.config import ClassifierConfig, DistillConfig
from aesthetic_platform.characters.data import Split, load_split, split_for, write_split
from aesthetic_platform.stats import cluster_bootstrap

Progress = Callable[[int, dict[str, float]], None]


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
                      temperature: float, alpha: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, soft, hard): soft is the T²-scaled KL to the teacher's softened distribution, hard the label CE."""
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * (t * t)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard, soft, hard


@torch.no_grad()
def cpu_images_per_second(model: torch.nn.Module, image_size: int, images: int = 64, batch_size: int = 16, repeats: int = 3) -> float:
    """Eval-mode forward throughput on CPU (one warm-up batch first), with whatever threads torch has.

    The fastest of ``repeats`` rounds counts: on a shared machine the slower rounds measure the
    other work, not the model."""
    model = copy.deepcopy(model).cpu().eval()
    batch = torch.randn(min(batch_size, images), 3, image_size, image_size)
    model(batch)
    best = 0.0
    for _ in range(max(1, repeats)):
        done = 0
        started = time.perf_counter()
        while done < images:
            n = min(batch_size, images - done)
            model(batch[:n])
            done += n
        best = max(best, done / (time.perf_counter() - started))
    return best


def paired_gap_ci(teacher_correct: np.ndarray, student_correct: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% CI of teacher minus student accuracy, resampling the same test images for both."""
    diff = np.asarray(teacher_correct, dtype=np.float64) - np.asarray(student_correct, dtype=np.float64)
    if diff.size == 0:
        return float("nan"), float("nan")
    return cluster_bootstrap(lambda w: float(np.average(diff, weights=w)), np.arange(diff.size), seed=seed)


@dataclass
class ModelFigures:
    """Size and speed of one model, as the comparison reports them."""

    model_name: str
    parameters: int
    file_bytes: int
    cpu_images_per_s: float
    image_size: int
    test: Evaluation

    def as_dict(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "parameters": self.parameters, "file_bytes": self.file_bytes,
                "file_mb": self.file_bytes / 2**20, "cpu_images_per_s": self.cpu_images_per_s, "image_size": self.image_size,
                "test": self.test.metrics()}


@dataclass
class DistillResult:
    """The student, its training, and how it compares with the teacher on the same test images."""

    student_dir: Path
    teacher_dir: Path
    classes: list[str]
    split: Split
    config: DistillConfig
    history: list[dict[str, float]]
    best_epoch: int
    teacher: ModelFigures
    student: ModelFigures
    gap: float
    gap_ci: tuple[float, float]
    device: str
    train_seconds: float

    @property
    def within_max_gap(self) -> bool:
        return bool(self.gap <= self.config.max_gap)

    @property
    def compression(self) -> float:
        return self.teacher.parameters / max(1, self.student.parameters)

    @property
    def speedup(self) -> float:
        return self.student.cpu_images_per_s / max(1e-9, self.teacher.cpu_images_per_s)

    def summary(self) -> dict[str, Any]:
        return {
            "student_dir": str(self.student_dir), "teacher_dir": str(self.teacher_dir), "classes": self.classes,
            "split_sizes": self.split.sizes(), "split_digest": self.split.digest(), "config": self.config.model_dump(),
            "history": self.history, "best_epoch": self.best_epoch, "teacher": self.teacher.as_dict(), "student": self.student.as_dict(),
            "student_per_class_accuracy": self.student.test.per_class, "student_confusion": self.student.test.confusion,
            "gap": self.gap, "gap_ci_low": self.gap_ci[0], "gap_ci_high": self.gap_ci[1], "max_gap": self.config.max_gap,
            "within_max_gap": self.within_max_gap, "compression": self.compression, "cpu_speedup": self.speedup,
            "device": self.device, "train_seconds": self.train_seconds,
        }


def student_config(teacher: CharacterClassifier, config: DistillConfig) -> ClassifierConfig:
    """The student's classifier config: its own backbone and size, the teacher's augmentation and split knobs."""
    return teacher.config.model_copy(update={
        "model_name": config.student_model, "pretrained": config.pretrained, "pretrained_file": config.pretrained_file,
        "image_size": config.image_size or teacher.config.image_size, "dropout": config.dropout, "epochs": config.epochs,
        "batch_size": config.batch_size, "lr": config.lr, "weight_decay": config.weight_decay, "seed": config.seed,
        "device": config.device, "num_workers": config.num_workers,
    })


def distill(teacher_dir: Path, dataset_dir: Path, config: DistillConfig, out_dir: Path, progress: Progress | None = None) -> DistillResult:
    """Train the student on the teacher's soft targets; keep its best validation epoch; compare both on test."""
    teacher_dir, dataset_dir, out_dir = Path(teacher_dir), Path(dataset_dir), Path(out_dir)
    device = resolve_device(config.device)
    teacher = CharacterClassifier.from_pretrained(teacher_dir, device=device)
    for p in teacher.parameters():
        p.requires_grad_(False)
    split = load_split(teacher_dir) or split_for(dataset_dir, teacher.config.val_fraction, teacher.config.test_fraction,
                                                 teacher.config.split_seed)
    check_split(split)
    generator = seed_everything(config.seed)
    student = CharacterClassifier(student_config(teacher, config), teacher.classes).to(device)
    # both models see one augmented batch: it is drawn at the larger side and resized for the other
    side = max(student.config.image_size, teacher.config.image_size)
    train_tf = student.train_transform() if side == student.config.image_size else teacher.train_transform()
    loaders = split_loaders(student, split, dataset_dir, config.batch_size, config.num_workers, generator, train_tf=train_tf)
    optimizer = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * len(loaders["train"])))
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, math.inf)
    best_state: dict[str, torch.Tensor] = {}
    best_epoch = 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        student.train()
        teacher.eval()
        sums = {"loss": 0.0, "soft_loss": 0.0, "hard_loss": 0.0}
        total, correct, agree = 0, 0, 0
        for x, y in loaders["train"]:
            x, y = x.to(device), y.to(device)
            with torch.no_grad():
                teacher_logits = teacher(_resize(x, teacher.config.image_size))
            student_logits = student(_resize(x, student.config.image_size))
            loss, soft, hard = distillation_loss(student_logits, teacher_logits, y, config.temperature, config.alpha)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            for key, value in (("loss", loss), ("soft_loss", soft), ("hard_loss", hard)):
                sums[key] += float(value.item()) * len(y)
            predicted = student_logits.argmax(1)
            correct += int((predicted == y).sum().item())
            agree += int((predicted == teacher_logits.argmax(1)).sum().item())
            total += len(y)
        val_logits, val_labels = predict_logits(student, loaders["val"], device)
        val = evaluation_of(val_logits, val_labels, split.classes)
        metrics = {**{f"train_{k}": v / max(1, total) for k, v in sums.items()}, "train_accuracy": correct / max(1, total),
                   "train_teacher_agreement": agree / max(1, total), "val_loss": val.loss, "val_accuracy": val.accuracy,
                   "val_top5": val.top5, "lr": optimizer.param_groups[0]["lr"]}
        history.append(metrics)
        if (val.accuracy, -val.loss) > (best[0], -best[1]):
            best, best_epoch = (val.accuracy, val.loss), epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in student.state_dict().items()})
        if progress is not None:
            progress(epoch, metrics)
    train_seconds = time.perf_counter() - started
    student.load_state_dict(best_state)
    student.save_pretrained(out_dir)
    write_split(out_dir, split)
    train_labels = [label for _, label in split.parts["train"]]
    figures = {}
    for role, model, folder in (("teacher", teacher, teacher_dir), ("student", student, out_dir)):
        test_loader = split_loaders(model, split, dataset_dir, config.batch_size, 0, generator)["test"]
        logits, labels = predict_logits(model, test_loader, device)
        figures[role] = ModelFigures(
            model.config.model_name, model.parameter_count(), (folder / WEIGHTS_FILE).stat().st_size,
            cpu_images_per_second(model, model.config.image_size, config.speed_images, config.speed_batch_size, config.speed_repeats),
            model.config.image_size, evaluation_of(logits, labels, split.classes, train_labels),
        )
    gap = figures["teacher"].test.accuracy - figures["student"].test.accuracy
    gap_ci = paired_gap_ci(np.asarray(figures["teacher"].test.correct), np.asarray(figures["student"].test.correct))
    result = DistillResult(out_dir, teacher_dir, split.classes, split, config, history, best_epoch, figures["teacher"],
                           figures["student"], gap, gap_ci, str(device), train_seconds)
    write_json(out_dir / RESULT_FILE, result.summary())
    return result


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    return F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False, antialias=True)


def plots(result: DistillResult, folder: Path) -> dict[str, Path]:
    """Student confusion matrix, learning curves, and the teacher-vs-student comparison as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aesthetic_platform.atomic import write_with
    from aesthetic_platform.characters.classifier import confusion_plot, history_plot

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {
        "confusion_matrix": confusion_plot(result.student.test.confusion, result.classes, folder / "student_confusion_matrix.png",
                                           "Student test confusion matrix"),
        "learning_curves": history_plot(result.history, folder / "student_learning_curves.png",
                                        f"{result.student.model_name} distillation"),
    }
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    names = [f"teacher\n{result.teacher.model_name}", f"student\n{result.student.model_name}"]
    t, s = result.teacher, result.student
    acc = [t.test.accuracy, s.test.accuracy]
    err = [[a - lo for a, lo in zip(acc, (t.test.ci_low, s.test.ci_low), strict=True)],
           [hi - a for a, hi in zip(acc, (t.test.ci_high, s.test.ci_high), strict=True)]]
    axes[0].bar(names, acc, yerr=err, capsize=4, color=["tab:blue", "tab:orange"])
    axes[0].axhline(t.test.chance, color="grey", linestyle="--", label="chance")
    axes[0].set_title("test accuracy (95% CI)")
    axes[0].set_ylim(0, 1)
    axes[0].legend(fontsize=7)
    for ax, values, title in ((axes[1], [t.parameters / 1e6, s.parameters / 1e6], "parameters (M)"),
                              (axes[2], [t.file_bytes / 2**20, s.file_bytes / 2**20], "file size (MiB)"),
                              (axes[3], [t.cpu_images_per_s, s.cpu_images_per_s], "CPU images/s")):
        ax.bar(names, values, color=["tab:blue", "tab:orange"])
        ax.set_title(title)
    fig.suptitle(f"gap {result.gap:+.3f} (max {result.config.max_gap}) — {'within' if result.within_max_gap else 'OVER'} bound")
    fig.tight_layout()
    path = folder / "teacher_vs_student.png"
    write_with(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    out["teacher_vs_student"] = path
    return out
