"""The character classifier (seed 002 §1): a timm backbone (EfficientNet-B0 by default) with a new head.

Training follows the seed: 224×224 inputs, random rotation, horizontal flip, colour jitter and
normalisation; CrossEntropy, AdamW and cosine annealing; the checkpoint kept is the epoch with
the best validation accuracy. The held-out test split is touched once, by that checkpoint:
top-1/top-5, per-class accuracy, a confusion matrix, and the accuracy's bootstrap 95% CI
against chance.

Weights are never downloaded. ``ClassifierConfig.pretrained`` names a timm pretrained tag and
``pretrained_file`` the local file holding it; without a tag the backbone starts from random
init, which is what runs offline.
"""

from __future__ import annotations

import copy
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader

from aesthetic_platform.atomic import write_json, write_with
from aesthetic_platform.characters.config import ClassifierConfig
from aesthetic_platform.characters.data import (
    SPLIT_FILE,
    CharacterImageDataset,
    Split,
    eval_transform,
    split_for,
    train_transform,
    write_split,
)
from aesthetic_platform.images import load_image
from aesthetic_platform.stats import cluster_bootstrap

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
CLASSES_FILE = "classes.json"
RESULT_FILE = "result.json"
Progress = Callable[[int, dict[str, float]], None]


def resolve_device(name: str = "") -> torch.device:
    return torch.device(name or ("cuda" if torch.cuda.is_available() else "cpu"))


def create_backbone(model_name: str, num_classes: int, pretrained: str = "", pretrained_file: str = "", dropout: float = 0.0) -> nn.Module:
    """A timm model with a ``num_classes`` head: random init, or the tagged weights from a local file (never a download)."""
    import timm

    if pretrained and not pretrained_file:
        raise ValueError(f"pretrained tag {pretrained!r} for {model_name} needs pretrained_file (a local weights file): "
                         "weights are never downloaded")
    if pretrained_file and not Path(pretrained_file).is_file():
        raise FileNotFoundError(f"pretrained_file {pretrained_file} does not exist")
    if not pretrained:
        model = timm.create_model(model_name, pretrained=False, num_classes=num_classes, drop_rate=dropout)
    else:
        model = timm.create_model(
            f"{model_name}.{pretrained}", pretrained=True, num_classes=num_classes, drop_rate=dropout,
            pretrained_cfg_overlay={"file": str(pretrained_file)},
        )
    # the head is new either way; timm's init of it is scaled for 1000 classes (range 1/sqrt(classes)),
    # which for a few dozen classes starts at logits in the tens and a loss several times log(k)
    head = model.get_classifier()  # type: ignore[operator]
    if isinstance(head, nn.Linear):
        nn.init.normal_(head.weight, std=0.01)
        nn.init.zeros_(head.bias)
    return model


class CharacterClassifier(nn.Module):
    """Images of characters -> logits over ``classes``; ``features`` gives the pooled penultimate vector."""

    def __init__(self, config: ClassifierConfig, classes: Sequence[str], load_pretrained: bool = True) -> None:
        super().__init__()
        if len(classes) < 2:
            raise ValueError(f"a character classifier needs at least 2 classes, got {list(classes)}")
        if len(set(classes)) != len(classes):
            raise ValueError(f"class names must be unique, got {list(classes)}")
        self.config = config
        self.classes = list(classes)
        pretrained = config.pretrained if load_pretrained else ""
        self.backbone = create_backbone(config.model_name, len(self.classes), pretrained, config.pretrained_file, config.dropout)
        cfg = getattr(self.backbone, "pretrained_cfg", {}) or {}
        self.mean = tuple(cfg.get("mean", (0.485, 0.456, 0.406)))
        self.std = tuple(cfg.get("std", (0.229, 0.224, 0.225)))

    @property
    def feature_dim(self) -> int:
        return int(self.backbone.num_features)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled penultimate features (B, feature_dim): what prototypes and fusion build on."""
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)  # type: ignore[operator]

    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The last convolutional feature maps (B, C, h, w), before pooling."""
        return self.backbone.forward_features(x)  # type: ignore[operator]

    def eval_transform(self) -> Callable[[Any], Any]:
        return eval_transform(self.config.image_size, self.mean, self.std)

    def train_transform(self) -> Callable[[Any], Any]:
        c = self.config
        return train_transform(c.image_size, c.rotation_degrees, c.hflip, c.color_jitter, self.mean, self.std)

    def preprocess(self, images: Sequence[Image.Image | str | Path]) -> torch.Tensor:
        """Images (PIL or paths, through ``load_image``) -> the normalised eval batch (B, 3, S, S)."""
        transform = self.eval_transform()
        fit = self.config.image_size * self.config.image_size * 4
        return torch.stack([transform(load_image(image, fit_pixels=fit)) for image in images])

    @torch.no_grad()
    def predict_proba(self, images: Sequence[Image.Image | str | Path], batch_size: int = 32) -> np.ndarray:
        """Class probabilities (N, classes) for images, in eval mode on the model's device."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = []
        for start in range(0, len(images), batch_size):
            batch = self.preprocess(images[start:start + batch_size]).to(device)
            out.append(F.softmax(self(batch), dim=1).cpu().numpy())
        self.train(was_training)
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), dtype=np.float32)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def save_pretrained(self, folder: Path) -> Path:
        """``model.safetensors`` + ``config.json`` + ``classes.json``, each written atomically."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        write_with(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p), metadata={"format": "pt"}))
        write_json(folder / CONFIG_FILE, self.config.model_dump())
        write_json(folder / CLASSES_FILE, self.classes)
        return folder

    @classmethod
    def from_pretrained(cls, folder: Path, device: str | torch.device = "cpu") -> CharacterClassifier:
        from safetensors.torch import load_file

        folder = Path(folder)
        missing = [name for name in (WEIGHTS_FILE, CONFIG_FILE, CLASSES_FILE) if not (folder / name).exists()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a saved character classifier: missing {missing}")
        config = ClassifierConfig.model_validate_json((folder / CONFIG_FILE).read_text())
        classes = json.loads((folder / CLASSES_FILE).read_text())
        model = cls(config, classes, load_pretrained=False)
        model.load_state_dict(load_file(str(folder / WEIGHTS_FILE)))
        return model.to(device).eval()


@dataclass
class Evaluation:
    """A model on one split part: accuracy with its CI, top-k, per-class accuracy, confusion."""

    accuracy: float
    ci_low: float
    ci_high: float
    top5: float
    loss: float
    chance: float
    uniform_chance: float
    items: int
    per_class: dict[str, float]
    confusion: list[list[int]]
    correct: list[int] = field(default_factory=list)  # per item, 1 if top-1 was right

    def metrics(self) -> dict[str, float]:
        return {"accuracy": self.accuracy, "accuracy_ci_low": self.ci_low, "accuracy_ci_high": self.ci_high, "top1": self.accuracy,
                "top5": self.top5, "loss": self.loss, "chance": self.chance, "uniform_chance": self.uniform_chance,
                "items": float(self.items)}


def accuracy_ci(correct: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """Bootstrap 95% CI of an accuracy; every rendered image is its own cluster (they are drawn independently)."""
    correct = np.asarray(correct, dtype=np.float64)
    if correct.size == 0:
        return float("nan"), float("nan")
    return cluster_bootstrap(lambda w: float(np.average(correct, weights=w)), np.arange(correct.size), seed=seed)


def evaluation_of(logits: np.ndarray, labels: np.ndarray, classes: Sequence[str], train_labels: Sequence[int] = ()) -> Evaluation:
    """Metrics of logits against labels. ``chance`` is the better of uniform guessing and always
    answering the training set's most frequent class."""
    k = len(classes)
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("nothing to evaluate: the split part is empty")
    preds = logits.argmax(1)
    correct = (preds == labels).astype(np.int64)
    topk = np.argsort(-logits, axis=1)[:, : min(5, k)]
    top5 = float(np.mean([label in row for label, row in zip(labels, topk, strict=True)]))
    loss = float(F.cross_entropy(torch.from_numpy(logits).float(), torch.from_numpy(labels)).item())
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    per_class = {classes[i]: float(confusion[i, i] / confusion[i].sum()) for i in range(k) if confusion[i].sum() > 0}
    majority = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=k).argmax() if len(train_labels) else None
    chance = max(1.0 / k, float(np.mean(labels == majority)) if majority is not None else 0.0)
    low, high = accuracy_ci(correct)
    return Evaluation(float(correct.mean()), low, high, top5, loss, chance, 1.0 / k, int(labels.size), per_class,
                      confusion.tolist(), correct.tolist())


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        logits.append(model(x.to(device)).float().cpu().numpy())
        labels.append(np.asarray(y))
    return np.concatenate(logits), np.concatenate(labels)


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class ClassifierResult:
    """A trained classifier: where it is, the split it saw, every epoch, and its held-out metrics."""

    model_dir: Path
    classes: list[str]
    split: Split
    config: ClassifierConfig
    history: list[dict[str, float]]
    best_epoch: int
    test: Evaluation
    device: str
    train_seconds: float
    dataset_dir: str
    feature_dim: int
    parameters: int

    @property
    def split_sizes(self) -> dict[str, int]:
        return self.split.sizes()

    def beats_chance(self) -> bool:
        """The held-out accuracy's CI lies wholly above chance."""
        return bool(self.test.ci_low > self.test.chance)

    def summary(self) -> dict[str, Any]:
        return {
            "model_dir": str(self.model_dir), "dataset_dir": self.dataset_dir, "classes": self.classes, "split_sizes": self.split_sizes,
            "split_digest": self.split.digest(), "config": self.config.model_dump(), "history": self.history, "best_epoch": self.best_epoch,
            "test": {**self.test.metrics(), "per_class_accuracy": self.test.per_class, "confusion": self.test.confusion},
            "beats_chance": self.beats_chance(), "device": self.device, "train_seconds": self.train_seconds,
            "feature_dim": self.feature_dim, "parameters": self.parameters,
        }


def split_loaders(model: CharacterClassifier, split: Split, root: Path, batch_size: int, workers: int, generator: torch.Generator,
             train_tf: Callable[[Any], Any] | None = None) -> dict[str, DataLoader]:
    fit = model.config.image_size * model.config.image_size * 4
    eval_tf = model.eval_transform()
    loaders = {}
    for part in ("train", "val", "test"):
        items = split.items(part, root)
        transform = (train_tf or model.train_transform()) if part == "train" else eval_tf
        loaders[part] = DataLoader(CharacterImageDataset(items, transform, fit), batch_size=batch_size, shuffle=part == "train",
                                   num_workers=workers, generator=generator if part == "train" else None, drop_last=False)
    return loaders


def check_split(split: Split) -> None:
    sizes = split.sizes()
    empty = [part for part, n in sizes.items() if n == 0]
    if empty:
        raise ValueError(f"split parts {empty} are empty (sizes {sizes}): the best checkpoint needs validation images "
                         "and the held-out metrics need test images; raise the fractions or add images")


def train_classifier(dataset_dir: Path, config: ClassifierConfig, out_dir: Path, progress: Progress | None = None) -> ClassifierResult:
    """Train on the dataset's train split, keep the best epoch by validation accuracy, evaluate it once on test.

    The dataset's ``split.json`` is used when present (else a stratified split from the config's
    fractions); it is saved with the model so every later stage uses the same held-out images."""
    dataset_dir = Path(dataset_dir)
    split = split_for(dataset_dir, config.val_fraction, config.test_fraction, config.split_seed)
    check_split(split)
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    model = CharacterClassifier(config, split.classes).to(device)
    loaders = split_loaders(model, split, dataset_dir, config.batch_size, config.num_workers, generator)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, config.epochs * len(loaders["train"])))
    history: list[dict[str, float]] = []
    best: tuple[float, float] = (-1.0, math.inf)
    best_state: dict[str, torch.Tensor] = {}
    best_epoch = 0
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        total, correct, loss_sum = 0, 0, 0.0
        for x, y in loaders["train"]:
            x, y = x.to(device), y.to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.item()) * len(y)
            correct += int((logits.argmax(1) == y).sum().item())
            total += len(y)
        val_logits, val_labels = predict_logits(model, loaders["val"], device)
        val = evaluation_of(val_logits, val_labels, split.classes)
        metrics = {"train_loss": loss_sum / max(1, total), "train_accuracy": correct / max(1, total), "val_loss": val.loss,
                   "val_accuracy": val.accuracy, "val_top5": val.top5, "lr": optimizer.param_groups[0]["lr"]}
        history.append(metrics)
        if (val.accuracy, -val.loss) > (best[0], -best[1]):
            best, best_epoch = (val.accuracy, val.loss), epoch
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
        if progress is not None:
            progress(epoch, metrics)
    train_seconds = time.perf_counter() - started
    model.load_state_dict(best_state)
    test_logits, test_labels = predict_logits(model, loaders["test"], device)
    test = evaluation_of(test_logits, test_labels, split.classes, [label for _, label in split.parts["train"]])
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    write_split(out_dir, split)
    result = ClassifierResult(out_dir, split.classes, split, config, history, best_epoch, test, str(device), train_seconds,
                              str(dataset_dir), model.feature_dim, model.parameter_count())
    write_json(out_dir / RESULT_FILE, result.summary())
    return result


def load_result_summary(model_dir: Path) -> dict[str, Any]:
    """The ``result.json`` a training run left beside its model (metrics, split sizes, history)."""
    path = Path(model_dir) / RESULT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{model_dir} has no {RESULT_FILE}")
    return json.loads(path.read_text())


# --- plots -------------------------------------------------------------------------------


def confusion_plot(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str = "Test confusion matrix") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(confusion, dtype=np.float64)
    k = len(classes)
    side = min(16.0, 3 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(side, side))
    rows = matrix.sum(1, keepdims=True)
    ax.imshow(np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), classes, rotation=90, fontsize=7)
    ax.set_yticks(range(k), classes, fontsize=7)
    if k <= 24:
        for i in range(k):
            for j in range(k):
                if matrix[i, j]:
                    ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    return path


def history_plot(history: Sequence[dict[str, float]], path: Path, title: str = "Training") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = range(1, len(history) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("train_loss", "val_loss"):
        if history and key in history[0]:
            left.plot(epochs, [h[key] for h in history], marker="o", label=key)
    for key in ("train_accuracy", "val_accuracy"):
        if history and key in history[0]:
            right.plot(epochs, [h[key] for h in history], marker="o", label=key)
    left.set_xlabel("epoch")
    right.set_xlabel("epoch")
    left.legend()
    right.legend()
    right.set_ylim(0, 1)
    fig.suptitle(title)
    fig.tight_layout()
    write_with(path, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    return path


def plots(result: ClassifierResult, folder: Path) -> dict[str, Path]:
    """Confusion matrix and learning curves as PNGs in ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "confusion_matrix": confusion_plot(result.test.confusion, result.classes, folder / "confusion_matrix.png"),
        "learning_curves": history_plot(result.history, folder / "learning_curves.png", f"{result.config.model_name} training"),
    }


__all__ = [
    "CLASSES_FILE", "CONFIG_FILE", "SPLIT_FILE", "WEIGHTS_FILE", "CharacterClassifier", "ClassifierResult", "Evaluation",
    "create_backbone", "evaluation_of", "load_result_summary", "plots", "resolve_device", "train_classifier",
]
