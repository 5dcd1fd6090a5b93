"""Classifiers on cached embeddings (seed 003's binary classifier, generalised to any label task).

Input: the vectors of one embedding model already in the store, joined with the consensus
labels of one task (no embedding happens here). A logistic or small MLP head, class weights,
a stratified train/val/test split by item, early stopping on validation F1 or AUC, and the
best epoch's weights. ``track_classifier`` logs it all to MLflow and registers the model.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from aesthetic_platform.embeddings.labels import consensus
from aesthetic_platform.embeddings.store import Store

CLASSIFIER_FILE = "classifier.json"
WEIGHTS_FILE = "classifier.safetensors"


class ClassifierSettings(BaseModel):
    """Every knob of an embedding classifier (the Dagster launchpad shows exactly these)."""

    task: str = Field(default="usable", description="Label task to learn; the target is each item's consensus label.")
    embedding_model: str = Field(default="", description="Embedding model id name@version; empty means the model with most labelled items.")
    head: Literal["logistic", "mlp"] = Field(default="logistic", description="Linear softmax head, or one hidden ReLU layer.")
    hidden_dim: int = Field(default=128, ge=1, description="Hidden units of the MLP head.")
    dropout: float = Field(default=0.1, ge=0, lt=1, description="Dropout before the MLP's output layer.")
    learning_rate: float = Field(default=1e-2, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, description="Adam weight decay.")
    epochs: int = Field(default=200, ge=1, description="Most epochs.")
    batch_size: int = Field(default=256, ge=1, description="Mini-batch size.")
    patience: int = Field(default=20, ge=1, description="Epochs without a better validation score before stopping.")
    early_stopping_metric: Literal["f1", "auc"] = Field(default="f1", description="Validation metric that picks the best epoch.")
    class_weights: bool = Field(default=True, description="Weight the loss by inverse class frequency (train split).")
    val_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="Share of items for validation (stratified).")
    test_fraction: float = Field(default=0.2, gt=0, lt=0.5, description="Share of items held out for the test metrics (stratified).")
    min_agreement: float = Field(default=0.0, ge=0, le=1, description="Drop items whose consensus has less annotator agreement.")
    positive_label: str = Field(default="", description="Binary tasks: the positive class for F1/AUC/PR; empty means the rarer class.")
    seed: int = Field(default=0, description="Seed of the split, the initialisation and the batch order.")


class ClassifierJobSettings(ClassifierSettings):
    """A training run: the classifier's knobs, and the MLflow run it belongs to when it is part of a sweep."""

    mlflow_parent_run_id: str = Field(default="", description="MLflow parent run of a sweep; empty for a single run.")


class ClassifierError(ValueError):
    """The labelled set cannot train a classifier (too few items or classes)."""


@dataclass
class LabelledVectors:
    model_id: str
    task: str
    hashes: list[str]
    X: np.ndarray
    y: list[str]


def labelled_vectors(store: Store, task: str, model_id: str = "", min_agreement: float = 0.0) -> LabelledVectors:
    """Consensus labels of ``task`` joined with cached vectors (one label query, one vector lookup per chunk)."""
    verdicts = {c.item: c for c in consensus(store, task) if c.label is not None and c.agreement >= min_agreement}
    if not verdicts:
        raise ClassifierError(f"task {task!r} has no item with a consensus label")
    if model_id:
        record = store.model(model_id)
    else:
        counts = {m.model_id: len(store.existing(m, verdicts)) for m in store.models()}
        if not counts or max(counts.values()) == 0:
            raise ClassifierError(f"no embedding model has vectors for the labelled items of {task!r}")
        record = store.model(max(counts, key=lambda k: counts[k]))
    vectors = store.get_many(record, verdicts)
    hashes = sorted(vectors)
    X = np.stack([vectors[h] for h in hashes]) if hashes else np.zeros((0, record.dimension), dtype=np.float32)
    return LabelledVectors(record.model_id, task, hashes, X, [verdicts[h].label for h in hashes])  # type: ignore[misc]


@dataclass
class ClassifierResult:
    settings: ClassifierSettings
    model_id: str
    classes: list[str]
    positive: str | None
    state: dict[str, Any]  # torch state dict of the best epoch
    mean: np.ndarray
    std: np.ndarray
    split_sizes: dict[str, int]
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    test: dict[str, float] = field(default_factory=dict)
    test_scores: np.ndarray | None = None  # [n_test, classes] probabilities
    test_labels: np.ndarray | None = None  # class indices

    def head_module(self):
        module = build_head(self.settings, self.mean.shape[0], len(self.classes))
        module.load_state_dict(self.state)
        return module.eval()

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            logits = self.head_module()(torch.from_numpy(((np.asarray(X, np.float32) - self.mean) / self.std).astype(np.float32)))
            return torch.softmax(logits, dim=-1).numpy()

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        from aesthetic_platform.atomic import write_json, write_with

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_with(folder / WEIGHTS_FILE, lambda tmp: save_file({k: v.contiguous() for k, v in self.state.items()}, str(tmp)))
        write_json(folder / CLASSIFIER_FILE, {
            "settings": self.settings.model_dump(), "model_id": self.model_id, "classes": self.classes, "positive": self.positive,
            "mean": self.mean.tolist(), "std": self.std.tolist(), "best_epoch": self.best_epoch, "test": self.test,
        })
        return folder


def load_classifier(folder: str | Path) -> ClassifierResult:
    from safetensors.torch import load_file

    folder = Path(folder)
    info = json.loads((folder / CLASSIFIER_FILE).read_text(encoding="utf-8"))
    return ClassifierResult(
        settings=ClassifierSettings.model_validate(info["settings"]), model_id=info["model_id"], classes=info["classes"],
        positive=info["positive"], state=load_file(str(folder / WEIGHTS_FILE)), mean=np.asarray(info["mean"], np.float32),
        std=np.asarray(info["std"], np.float32), split_sizes={}, best_epoch=info["best_epoch"], test=info["test"],
    )


def build_head(settings: ClassifierSettings, dimension: int, classes: int):
    from torch import nn

    if settings.head == "logistic":
        return nn.Linear(dimension, classes)
    return nn.Sequential(nn.Linear(dimension, settings.hidden_dim), nn.ReLU(), nn.Dropout(settings.dropout),
                         nn.Linear(settings.hidden_dim, classes))


def _split(y: np.ndarray, settings: ClassifierSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified by class over items (each row is one item)."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(y))
    counts = np.bincount(y)
    if counts.min() < 3:
        raise ClassifierError(f"every class needs at least 3 labelled items for a train/val/test split, got counts {counts.tolist()}")
    rest, test = train_test_split(index, test_size=settings.test_fraction, stratify=y, random_state=settings.seed)
    val_share = settings.val_fraction / (1 - settings.test_fraction)
    train, val = train_test_split(rest, test_size=val_share, stratify=y[rest], random_state=settings.seed)
    return train, val, test


def evaluate(probs: np.ndarray, y: np.ndarray, positive: int | None) -> dict[str, float]:
    """Accuracy, balanced accuracy, F1 (positive class when binary, else macro) and ROC AUC."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    predicted = probs.argmax(axis=1)
    out = {"accuracy": float(accuracy_score(y, predicted)), "balanced_accuracy": float(balanced_accuracy_score(y, predicted))}
    if positive is not None:
        out["f1"] = float(f1_score(y, predicted, pos_label=positive, average="binary", zero_division=0))
        out["auc"] = float(roc_auc_score(y == positive, probs[:, positive])) if len(set(y.tolist())) == 2 else float("nan")
    else:
        out["f1"] = float(f1_score(y, predicted, average="macro", zero_division=0))
        try:
            out["auc"] = float(roc_auc_score(y, probs, multi_class="ovr", labels=list(range(probs.shape[1]))))
        except ValueError:
            out["auc"] = float("nan")
    return out


def train_classifier(data: LabelledVectors, settings: ClassifierSettings, on_epoch=None) -> ClassifierResult:
    """Train on the train split, stop early on validation, report the held-out test split. ``on_epoch(epoch, metrics)``."""
    import torch
    from torch import nn

    classes = sorted(set(data.y))
    if len(classes) < 2:
        raise ClassifierError(f"task {data.task!r} has one class only ({classes}); nothing to learn")
    code = {c: i for i, c in enumerate(classes)}
    y = np.asarray([code[v] for v in data.y])
    positive_name = None
    if len(classes) == 2:
        positive_name = settings.positive_label or min(classes, key=lambda c: (int((y == code[c]).sum()), c))
        if positive_name not in code:
            raise ClassifierError(f"positive_label {positive_name!r} is not one of the classes {classes}")
    positive = code[positive_name] if positive_name else None
    train, val, test = _split(y, settings)
    mean = data.X[train].mean(axis=0)
    std = data.X[train].std(axis=0) + 1e-6
    X = torch.from_numpy(((data.X - mean) / std).astype(np.float32))
    target = torch.from_numpy(y)
    torch.manual_seed(settings.seed)
    head = build_head(settings, X.shape[1], len(classes))
    weights = None
    if settings.class_weights:
        counts = np.bincount(y[train], minlength=len(classes)).astype(np.float32)
        weights = torch.from_numpy(len(train) / (len(classes) * np.maximum(counts, 1)))
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    optimizer = torch.optim.Adam(head.parameters(), lr=settings.learning_rate, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    train_t = torch.from_numpy(train)
    best_score, best_state, best_epoch, stale = -math.inf, None, 0, 0
    history: list[dict[str, float]] = []
    for epoch in range(1, settings.epochs + 1):
        head.train()
        order = train_t[torch.randperm(len(train_t), generator=generator)]
        total = 0.0
        for start in range(0, len(order), settings.batch_size):
            batch = order[start : start + settings.batch_size]
            optimizer.zero_grad()
            loss = loss_fn(head(X[batch]), target[batch])
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        head.eval()
        with torch.no_grad():
            val_probs = torch.softmax(head(X[val]), dim=-1).numpy()
            val_loss = float(loss_fn(head(X[val]), target[val]))
        metrics = {"train_loss": total / len(train), "val_loss": val_loss}
        metrics.update({f"val_{k}": v for k, v in evaluate(val_probs, y[val], positive).items()})
        history.append(metrics)
        if on_epoch is not None:
            on_epoch(epoch, metrics)
        score = metrics[f"val_{settings.early_stopping_metric}"]
        score = -math.inf if math.isnan(score) else score
        if score > best_score + 1e-9 or best_state is None:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= settings.patience:
                break
    assert best_state is not None  # epochs >= 1 and the first epoch always keeps its state
    head.load_state_dict(best_state)
    head.eval()
    with torch.no_grad():
        test_probs = torch.softmax(head(X[test]), dim=-1).numpy()
    test_metrics = evaluate(test_probs, y[test], positive)
    majority = np.bincount(y[train]).argmax()
    test_metrics["majority_baseline_accuracy"] = float((y[test] == majority).mean())
    return ClassifierResult(
        settings=settings, model_id=data.model_id, classes=classes, positive=positive_name, state=best_state,
        mean=mean.astype(np.float32), std=std.astype(np.float32),
        split_sizes={"train": len(train), "val": len(val), "test": len(test)}, history=history, best_epoch=best_epoch,
        test=test_metrics, test_scores=test_probs, test_labels=y[test],
    )


def plots(result: ClassifierResult, folder: Path) -> dict[str, Path]:
    """The test split's confusion matrix and (binary) precision-recall curve as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay, PrecisionRecallDisplay

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    assert result.test_scores is not None and result.test_labels is not None
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(result.test_labels, result.test_scores.argmax(axis=1), labels=list(range(len(result.classes))),
                                            display_labels=result.classes, ax=ax, colorbar=False)
    ax.set_title(f"{result.settings.task}: test confusion matrix")
    fig.tight_layout()
    out["confusion_matrix"] = folder / "confusion_matrix.png"
    fig.savefig(out["confusion_matrix"], dpi=110)
    plt.close(fig)
    if result.positive is not None:
        positive = result.classes.index(result.positive)
        fig, ax = plt.subplots(figsize=(4.5, 4))
        PrecisionRecallDisplay.from_predictions(result.test_labels == positive, result.test_scores[:, positive], ax=ax,
                                                name=f"{result.settings.head} ({result.positive})")
        ax.set_title(f"{result.settings.task}: test precision-recall")
        fig.tight_layout()
        out["pr_curve"] = folder / "pr_curve.png"
        fig.savefig(out["pr_curve"], dpi=110)
        plt.close(fig)
    return out
