"""Image + text fusion (seed 002 §3.3): frozen image features and a description's text embedding, late fusion with a gate.

Each head sees one modality and says what it believes (log-probabilities over the
characters); a learned gate, computed from both inputs, decides per image how much each
head counts: ``log p = g·log p_image + (1-g)·log p_text`` (renormalised). The classifier
stays frozen; only the heads and the gate learn.

The comparison has to be on data where the text carries information, else fusion can only
tie. Here the images are degraded the way a photo of a screen or a sketch would be
(grey-scale and blurred: hair, eye, skin and outfit colours are gone, shapes remain) and
every image comes with its own short description that mentions only a few of the
character's attributes (a random subset per image), so neither modality alone pins the
character down. The image-only baseline is the same image head trained alone, with the same
recipe, on the same split; both accuracies are reported on the test split with 95% cluster
bootstrap intervals (clustered by character), with the paired difference.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageFilter
from torch import nn

from aesthetic_platform.atomic import write_json, write_with
from aesthetic_platform.characters.config import FusionConfig
from aesthetic_platform.characters.prototypes import FeatureModel, image_features, resolve_device
from aesthetic_platform.images import load_image
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.stats import cluster_bootstrap

CONFIG_FILE = "fusion_config.json"
WEIGHTS_FILE = "fusion.safetensors"


class FusionError(ValueError):
    """The data cannot train or compare the fusion heads."""


# ---- inputs -------------------------------------------------------------------------------


def degrade(image: Image.Image, size: int, blur_radius: float) -> Image.Image:
    """Grey-scale, resized to the classifier's input and blurred: colour is gone, shapes stay."""
    grey = image.convert("L").resize((size, size), Image.Resampling.BILINEAR)
    if blur_radius > 0:
        grey = grey.filter(ImageFilter.GaussianBlur(blur_radius))
    return grey.convert("RGB")


def partial_description(spec: Any, mentioned: int, rng: random.Random) -> str:
    """A description of ``spec`` that mentions ``mentioned`` of its attributes, chosen at random."""
    from aesthetic_platform.characters.render import ATTRIBUTES, describe

    return describe(spec, rng.sample(list(ATTRIBUTES), min(mentioned, len(ATTRIBUTES))))


class TextEncoder:
    """The packaged offline MiniLM (``minilm``), or any transformers encoder by name or folder (mean-pooled), L2-normalised."""

    def __init__(self, name: str = "minilm", device: str = "", batch_size: int = 64) -> None:
        self.name = name
        self.device = resolve_device(device)
        self.batch_size = batch_size
        if name == "minilm":
            from aesthetic_platform.embeddings.embedders import MiniLMEmbedder

            self._minilm = MiniLMEmbedder(device=self.device, batch_size=batch_size)
            self.model_id = self._minilm.model_id
            self.max_tokens = self._minilm.max_tokens
            self.dimension = self._minilm.spec.dimension
        else:
            from transformers import AutoModel, AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(name)
            self._model = AutoModel.from_pretrained(name).to(self.device).eval()
            self.model_id = f"hf/{name}"
            self.dimension = int(self._model.config.hidden_size)
            self.max_tokens = _encoder_max_tokens(self._tokenizer, self._model.config)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        unique = list(dict.fromkeys(texts))
        if self.name == "minilm":
            from aesthetic_platform.embeddings.embedders import text_item

            vectors = self._minilm.embed([text_item(t) for t in unique])
        else:
            rows = []
            with torch.no_grad():
                for start in range(0, len(unique), self.batch_size):
                    tokens = self._tokenizer(list(unique[start : start + self.batch_size]), padding=True, truncation=True,
                                             max_length=self.max_tokens, return_tensors="pt").to(self.device)
                    hidden = self._model(**tokens).last_hidden_state
                    mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                    rows.append(nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
            vectors = np.concatenate(rows)
        index = {t: i for i, t in enumerate(unique)}
        return np.asarray(vectors, dtype=np.float32)[[index[t] for t in texts]]

    def count_over_limit(self, texts: Sequence[str]) -> int:
        """Distinct texts longer than the encoder reads (it embeds their beginning only): reported, never cut silently."""
        from aesthetic_platform.embeddings.embedders import text_item, texts_over_limit

        items = [text_item(t) for t in dict.fromkeys(texts)]
        if self.name == "minilm":
            return len(self._minilm.over_limit(items))
        return len(texts_over_limit(self._tokenizer, items, self.max_tokens))


#: what transformers puts in ``model_max_length`` when a tokenizer was saved without one
UNSET_MAX_LENGTH = 1_000_000


def _encoder_max_tokens(tokenizer, config) -> int:
    """Tokens the encoder can read: the tokenizer's own limit, else the model's position table (RoBERTa-family
    tables start after the padding index, two slots in). Without it a long text would index past the table."""
    if tokenizer.model_max_length < UNSET_MAX_LENGTH:
        return int(tokenizer.model_max_length)
    positions = int(config.max_position_embeddings)
    return positions - 2 if "roberta" in str(getattr(config, "model_type", "")) else positions


@dataclass
class FusionData:
    """Aligned rows: image features, text embeddings, labels, the character of each row, per split."""

    classes: list[str]
    image: dict[str, np.ndarray]
    text: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    descriptions: dict[str, list[str]]
    texts_truncated: int = 0  # descriptions longer than the text encoder reads


def build_fusion_data(
    model: FeatureModel,
    parts: Mapping[str, Sequence[tuple[Path, str]]],
    specs: Mapping[str, Any],
    config: FusionConfig,
    encoder: TextEncoder,
    image_size: int,
) -> FusionData:
    """Features of the (degraded) images under the frozen classifier and embeddings of per-image partial descriptions."""
    classes = sorted({c for rows in parts.values() for _, c in rows})
    missing = sorted(set(classes) - set(specs))
    if missing:
        raise FusionError(f"no character description for {missing[:5]}: fusion needs a rendered dataset's characters.json")
    index = {c: i for i, c in enumerate(classes)}
    rng = random.Random(f"fusion-{config.seed}")
    out = FusionData(classes, {}, {}, {}, {})
    for part, rows in parts.items():
        if not rows:
            raise FusionError(f"the {part} split is empty")
        images = [load_image(path) for path, _ in rows]
        if config.degrade:
            images = [degrade(im, image_size, config.blur_radius) for im in images]
        texts = [partial_description(specs[c], config.mentioned_attributes, rng) for _, c in rows]
        out.image[part] = image_features(model, images, config.batch_size, config.device)
        out.text[part] = encoder.encode(texts)
        out.texts_truncated += encoder.count_over_limit(texts)
        out.labels[part] = np.array([index[c] for _, c in rows])
        out.descriptions[part] = texts
    return out


# ---- models -------------------------------------------------------------------------------


def _head(dim: int, classes: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(dim), nn.Dropout(dropout), nn.Linear(dim, classes))


class GatedLateFusion(nn.Module):
    """One head per modality; a gate from both inputs weighs their log-probabilities per image."""

    def __init__(self, image_dim: int, text_dim: int, classes: int, hidden_dim: int = 64, dropout: float = 0.1) -> None:
        super().__init__()
        self.dims = {"image_dim": image_dim, "text_dim": text_dim, "classes": classes, "hidden_dim": hidden_dim, "dropout": dropout}
        self.image_head = _head(image_dim, classes, dropout)
        self.text_head = _head(text_dim, classes, dropout)
        self.gate = nn.Sequential(nn.LayerNorm(image_dim + text_dim), nn.Linear(image_dim + text_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, 1))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        log_image = torch.log_softmax(self.image_head(image), dim=-1)
        log_text = torch.log_softmax(self.text_head(text), dim=-1)
        gate = torch.sigmoid(self.gate(torch.cat([image, text], dim=-1)))
        fused = torch.log_softmax(gate * log_image + (1 - gate) * log_text, dim=-1)
        return {"fused": fused, "image": log_image, "text": log_text, "gate": gate.squeeze(-1)}


class ImageOnly(nn.Module):
    """The baseline: the same image head, trained alone."""

    def __init__(self, image_dim: int, classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.image_head = _head(image_dim, classes, dropout)

    def forward(self, image: torch.Tensor, text: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        log_image = torch.log_softmax(self.image_head(image), dim=-1)
        return {"fused": log_image, "image": log_image}


@contextmanager
def _one_cpu_thread(device: torch.device) -> Iterator[None]:
    """The heads are tiny: on CPU one thread is faster than several waiting on each other (and on a busy machine, far faster)."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(model: nn.Module, data: FusionData, config: FusionConfig, aux: Sequence[str]) -> tuple[list[dict[str, float]], int]:
    device = torch.device(resolve_device(config.device))
    with _one_cpu_thread(device):
        return _train_on(model, data, config, aux, device)


def _train_on(
    model: nn.Module, data: FusionData, config: FusionConfig, aux: Sequence[str], device: torch.device
) -> tuple[list[dict[str, float]], int]:
    """Full-batch AdamW epochs; the weights of the best validation epoch are kept. Returns per-epoch history and that epoch."""
    model.to(device)
    tensors = {part: (torch.from_numpy(data.image[part]).to(device), torch.from_numpy(data.text[part]).to(device),
                      torch.from_numpy(data.labels[part]).long().to(device)) for part in ("train", "val")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    loss_fn = nn.NLLLoss()
    history: list[dict[str, float]] = []
    best, best_epoch, best_state = -1.0, 0, None
    for epoch in range(1, config.epochs + 1):
        model.train()
        image, text, labels = tensors["train"]
        out = model(image, text)
        loss = loss_fn(out["fused"], labels) + config.aux_weight * sum(loss_fn(out[k], labels) for k in aux)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.eval()
        with torch.no_grad():
            image, text, labels = tensors["val"]
            val_out = model(image, text)
            val_loss = float(loss_fn(val_out["fused"], labels))
            val_acc = float((val_out["fused"].argmax(-1) == labels).float().mean())
        history.append({"train_loss": loss.item(), "val_loss": val_loss, "val_accuracy": val_acc})
        if val_acc > best:
            best, best_epoch = val_acc, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return history, best_epoch


@dataclass
class FusionResult:
    """Fusion vs image-only (and text-only) on the same test split, with 95% cluster-bootstrap CIs."""

    config: FusionConfig
    text_model: str
    classes: list[str]
    split_sizes: dict[str, int]
    fusion_accuracy: tuple[float, float, float]
    image_only_accuracy: tuple[float, float, float]
    text_head_accuracy: tuple[float, float, float]  # the fused model's own text head alone
    difference: tuple[float, float, float]  # fusion - image-only, paired
    mean_gate: float  # average weight of the image head on test images
    fusion_history: list[dict[str, float]]
    image_only_history: list[dict[str, float]]
    best_epochs: dict[str, int]
    fusion_model: GatedLateFusion
    examples: list[dict[str, str]] = field(default_factory=list)
    texts_truncated: int = 0  # descriptions the text encoder read only the beginning of

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"mean_gate": self.mean_gate, "chance": 1.0 / len(self.classes),
                                 "texts_truncated": float(self.texts_truncated)}
        for name in ("fusion_accuracy", "image_only_accuracy", "text_head_accuracy", "difference"):
            value, low, high = getattr(self, name)
            out.update({name: value, f"{name}_ci_low": low, f"{name}_ci_high": high})
        return out

    def save_pretrained(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.fusion_model.state_dict().items()}
        write_with(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
        write_json(folder / CONFIG_FILE, {"dims": self.fusion_model.dims, "classes": self.classes, "text_model": self.text_model,
                                          "config": self.config.model_dump(), "metrics": self.metrics()})
        return folder


def load_fusion(folder: Path) -> tuple[GatedLateFusion, dict[str, Any]]:
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / CONFIG_FILE).read_text())
    model = GatedLateFusion(**meta["dims"])
    model.load_state_dict(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return model.eval(), meta


def _accuracy_ci(correct: np.ndarray, clusters: np.ndarray, seed: int) -> tuple[float, float, float]:
    def statistic(weights: np.ndarray) -> float:
        return float(np.sum(weights * correct) / np.sum(weights))

    low, high = cluster_bootstrap(statistic, clusters, seed=seed)
    return float(correct.mean()), low, high


def train_fusion(data: FusionData, config: FusionConfig, text_model: str) -> FusionResult:
    """Train the gated fusion and the image-only baseline on the same train/val split; compare them on test."""
    for part in ("train", "val", "test"):
        if part not in data.labels or len(data.labels[part]) == 0:
            raise FusionError(f"fusion needs a non-empty {part} split")
    classes = len(data.classes)
    image_dim, text_dim = data.image["train"].shape[1], data.text["train"].shape[1]
    torch.manual_seed(config.seed)
    fusion = GatedLateFusion(image_dim, text_dim, classes, config.hidden_dim, config.dropout)
    fusion_history, fusion_best = _train(fusion, data, config, aux=("image", "text"))
    torch.manual_seed(config.seed)
    baseline = ImageOnly(image_dim, classes, config.dropout)
    baseline_history, baseline_best = _train(baseline, data, config, aux=())
    device = torch.device(resolve_device(config.device))
    image = torch.from_numpy(data.image["test"]).to(device)
    text = torch.from_numpy(data.text["test"]).to(device)
    labels = data.labels["test"]
    with torch.no_grad():
        fused = fusion(image, text)
        base = baseline(image)
    fused_hit = (fused["fused"].argmax(-1).cpu().numpy() == labels).astype(np.float64)
    text_hit = (fused["text"].argmax(-1).cpu().numpy() == labels).astype(np.float64)
    base_hit = (base["fused"].argmax(-1).cpu().numpy() == labels).astype(np.float64)
    diff = fused_hit - base_hit

    def difference(weights: np.ndarray) -> float:
        return float(np.sum(weights * diff) / np.sum(weights))

    low, high = cluster_bootstrap(difference, labels, seed=config.seed)
    predicted = fused["fused"].argmax(-1).cpu().numpy()
    examples = [
        {"description": data.descriptions["test"][i], "truth": data.classes[labels[i]], "fusion": data.classes[predicted[i]],
         "image_only": data.classes[int(base["fused"][i].argmax())], "gate": f"{float(fused['gate'][i]):.2f}"}
        for i in range(min(8, len(labels)))
    ]
    return FusionResult(
        config=config, text_model=text_model, classes=data.classes,
        split_sizes={part: len(v) for part, v in data.labels.items()},
        fusion_accuracy=_accuracy_ci(fused_hit, labels, config.seed),
        image_only_accuracy=_accuracy_ci(base_hit, labels, config.seed),
        text_head_accuracy=_accuracy_ci(text_hit, labels, config.seed),
        difference=(float(diff.mean()), low, high),
        mean_gate=float(fused["gate"].mean()),
        fusion_history=fusion_history, image_only_history=baseline_history,
        best_epochs={"fusion": fusion_best, "image_only": baseline_best}, fusion_model=fusion, examples=examples,
        texts_truncated=data.texts_truncated,
    )


def run_fusion(
    model: FeatureModel, parts: Mapping[str, Sequence[tuple[Path, str]]], specs: Mapping[str, Any], config: FusionConfig,
    image_size: int,
) -> FusionResult:
    """The whole comparison: inputs under the frozen classifier, text embeddings, both heads trained, test accuracies with CIs."""
    encoder = TextEncoder(config.text_encoder, config.device, config.batch_size)
    data = build_fusion_data(model, parts, specs, config, encoder, image_size)
    return train_fusion(data, config, encoder.model_id)


def fresh_parts(
    dataset_dir: Path, classes: Sequence[str], per_character: int, seed: int, work_dir: Path
) -> dict[str, list[tuple[Path, str]]]:
    """New renders of the training characters (another image seed: same designs, unseen poses), split 60/20/20 per character."""
    from aesthetic_platform.characters.config import RenderConfig
    from aesthetic_platform.characters.render import CHARACTERS_FILE, load_characters, render_dataset

    specs = load_characters(dataset_dir)
    rendered = json.loads((Path(dataset_dir) / CHARACTERS_FILE).read_text())["config"]
    indices = sorted(specs[c].index for c in classes)
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise FusionError("fresh renders need the training characters to be one contiguous range of designs")
    config = RenderConfig(characters=len(indices), images_per_character=per_character, image_size=int(rendered["image_size"]),
                          seed=int(rendered["seed"]), first_character=indices[0], image_seed=20_000 + seed)
    folder = Path(work_dir) / f"fresh-{config.seed}-{config.first_character}-{config.characters}-{config.image_seed}-{per_character}"
    summary = render_dataset(folder, config)
    parts: dict[str, list[tuple[Path, str]]] = {"train": [], "val": [], "test": []}
    for spec in summary.characters:
        paths = sorted(summary.class_dir(spec.name).glob("*.png"))
        n_val = n_test = max(1, round(0.2 * len(paths)))
        parts["test"] += [(p, spec.name) for p in paths[:n_test]]
        parts["val"] += [(p, spec.name) for p in paths[n_test : n_test + n_val]]
        parts["train"] += [(p, spec.name) for p in paths[n_test + n_val :]]
    return parts


def run_fusion_from_model(
    model_dir: str | Path, config: FusionConfig, work_dir: Path | None = None, root: DataRoot | None = None
) -> FusionResult:
    """Fusion on a saved classifier's characters (descriptions from the rendered dataset's characters.json): its own
    train/val/test split, or fresh renders of its characters (``fresh_images_per_character``, written under ``work_dir``)."""
    from aesthetic_platform.characters.prototypes import load_trained
    from aesthetic_platform.characters.render import load_characters

    trained = load_trained(model_dir, config.device, root)
    specs = load_characters(trained.dataset_dir)
    if config.fresh_images_per_character:
        if work_dir is None:
            raise FusionError("fresh renders need a work_dir to be written to")
        parts = fresh_parts(trained.dataset_dir, trained.split.classes, config.fresh_images_per_character, config.seed, work_dir)
    else:
        parts = {name: trained.part(name) for name in ("train", "val", "test")}
    return run_fusion(trained.model, parts, specs, config, trained.model.config.image_size)


def fusion_plots(result: FusionResult, folder: Path) -> dict[str, Path]:
    """Test accuracy with CIs per model, and the validation curves of both."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    names = ["image only", "text head", "fusion"]
    values = [result.image_only_accuracy, result.text_head_accuracy, result.fusion_accuracy]
    means = [v[0] for v in values]
    errors = np.array([[v[0] - v[1] for v in values], [v[2] - v[0] for v in values]])
    left.bar(names, means, yerr=errors, capsize=4, color=["#888", "#6a9", "#36c"])
    left.axhline(1.0 / len(result.classes), color="black", linestyle=":", label="chance")
    left.set_ylim(0, 1)
    left.set_ylabel("test accuracy (95% CI)")
    left.legend()
    right.plot([h["val_accuracy"] for h in result.image_only_history], label="image only")
    right.plot([h["val_accuracy"] for h in result.fusion_history], label="fusion")
    right.set_xlabel("epoch")
    right.set_ylabel("validation accuracy")
    right.legend()
    fig.tight_layout()
    path = write_with(folder / "fusion_accuracy.png", lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return {"fusion_accuracy": path}
