"""The classifier-guided generator (seed 002 §2): draw a given character from noise, examined by the frozen classifier.

- **Generator**: noise + a learned embedding of the target class -> a small feature map ->
  repeated ``Upsample(×2, nearest) + Conv2d(3×3)`` blocks -> RGB in [-1, 1]. Nearest-neighbour
  upsampling followed by a stride-1 convolution gives every output pixel the same number of
  contributing weights, so the checkerboard pattern of transposed convolutions (uneven
  kernel overlap) cannot arise: there is no ``ConvTranspose`` anywhere (a test walks the modules).
  GroupNorm instead of BatchNorm, so a sample does not depend on its batch and training and
  evaluation draw the same images.
- **Discriminator**: strided convolutions with spectral normalisation, real vs generated.
- **Examiner**: the frozen character classifier; its cross-entropy on the target class.
- **Perceptual loss**: feature distance between each generated image and a real image of the
  same character, in VGG16 (relu3_3) when its ImageNet weights are in the local torch hub
  cache, otherwise in the frozen classifier's intermediate stages; the result says which.

Generator loss: ``adv_weight·adv + cls_weight·cls + perc_weight·perc`` (0.1, 0.2, 10 by
default). After every epoch: each loss term, and the classifier's mean confidence in the target
class on a fixed set of samples (same noise every epoch), and ``samples_epoch_<n>.png``.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from aesthetic_platform.atomic import write_json, write_with
from aesthetic_platform.characters.config import GeneratorConfig
from aesthetic_platform.characters.prototypes import resolve_device
from aesthetic_platform.images import load_image
from aesthetic_platform.paths import DataRoot

CONFIG_FILE = "generator_config.json"
WEIGHTS_FILE = "generator.safetensors"
HISTORY_FILE = "history.json"
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG16 checkpoint name in the hub cache
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_UPSAMPLINGS = 5


class GeneratorError(ValueError):
    """A generator run that cannot start (no images of a target class, unknown class names, bad sizes)."""


def upsampling_plan(image_size: int) -> tuple[int, int]:
    """(start side, number of ×2 upsamplings): halve while the side stays even and at least 4, at most 5 times (224 -> 7, 5)."""
    side, steps = image_size, 0
    while side % 2 == 0 and side // 2 >= 4 and steps < MAX_UPSAMPLINGS:
        side //= 2
        steps += 1
    return side, steps


def _groups(channels: int) -> int:
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class UpBlock(nn.Sequential):
    """Nearest-neighbour ×2 then a 3×3 stride-1 convolution: even kernel overlap everywhere (no checkerboard)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Upsample(scale_factor=2, mode="nearest"),
            nn.Conv2d(in_channels, out_channels, 3, padding=1),
            nn.GroupNorm(_groups(out_channels), out_channels),
            nn.ReLU(inplace=True),
        )


class Generator(nn.Module):
    def __init__(self, classes: int, noise_dim: int, embedding_dim: int, base_channels: int, image_size: int) -> None:
        super().__init__()
        self.dims = {"classes": classes, "noise_dim": noise_dim, "embedding_dim": embedding_dim, "base_channels": base_channels,
                     "image_size": image_size}
        start, steps = upsampling_plan(image_size)
        self.start = start
        self.base_channels = base_channels
        self.embedding = nn.Embedding(classes, embedding_dim)
        self.project = nn.Sequential(nn.Linear(noise_dim + embedding_dim, base_channels * start * start), nn.ReLU(inplace=True))
        blocks: list[nn.Module] = []
        channels = base_channels
        for _ in range(steps):
            out = max(16, channels // 2)
            blocks.append(UpBlock(channels, out))
            channels = out
        self.blocks = nn.Sequential(*blocks)
        self.to_rgb = nn.Sequential(nn.Conv2d(channels, 3, 3, padding=1), nn.Tanh())

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.cat([noise, self.embedding(labels)], dim=1))
        x = x.view(-1, self.base_channels, self.start, self.start)
        return self.to_rgb(self.blocks(x))


class Discriminator(nn.Module):
    def __init__(self, channels: int, image_size: int) -> None:
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = []
        side, in_ch, out_ch = image_size, 3, channels
        while side > 4:
            layers += [sn(nn.Conv2d(in_ch, out_ch, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            side //= 2
            in_ch, out_ch = out_ch, min(out_ch * 2, 512)
        self.body = nn.Sequential(*layers) if layers else nn.Identity()
        self.head = sn(nn.Linear(in_ch, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images).mean(dim=(2, 3))).squeeze(-1)


def transposed_convolutions(module: nn.Module) -> list[str]:
    """Names of every transposed convolution in ``module`` (the generator must have none)."""
    kinds = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
    return [name for name, m in module.named_modules() if isinstance(m, kinds)]


# ---- the examiner and the perceptual network -------------------------------------------------


def _normalizer(model: Any, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
    """[-1, 1] images -> the classifier's input: its size, ImageNet normalisation (or the model's own mean/std)."""
    config = getattr(model, "config", None)
    size = int(getattr(config, "image_size", 0) or 0)
    mean = torch.tensor(getattr(model, "mean", IMAGENET_MEAN), device=device).view(1, 3, 1, 1)
    std = torch.tensor(getattr(model, "std", IMAGENET_STD), device=device).view(1, 3, 1, 1)

    def normalize(images: torch.Tensor) -> torch.Tensor:
        x = (images + 1) / 2
        if size and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return (x - mean) / std

    return normalize


def vgg16_weights() -> Path | None:
    """The torchvision VGG16 ImageNet checkpoint in the local hub cache, if someone put it there (never downloaded)."""
    path = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
    return path if path.exists() else None


class Perceptual(nn.Module):
    """Frozen feature extractor of the perceptual loss: VGG16 up to relu3_3, or the classifier's intermediate stages."""

    def __init__(self, kind: str, classifier: nn.Module, to_input: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.kind = kind
        self.to_input = to_input
        self.vgg: nn.Module | None = None
        self.backbone: Any = None
        if kind == "vgg16":
            torchvision = importlib.import_module("torchvision")  # ships no type information
            path = vgg16_weights()
            if path is None:
                raise GeneratorError(f"VGG16 weights not found at {Path(torch.hub.get_dir()) / 'checkpoints' / VGG16_FILE}")
            vgg = torchvision.models.vgg16(weights=None)
            vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            self.vgg = vgg.features[:16].eval()
            for p in self.vgg.parameters():
                p.requires_grad_(False)
        else:
            self.backbone = next((m for m in classifier.modules() if hasattr(m, "forward_intermediates")), None)
        self.classifier = classifier

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.to_input(images)
        if self.vgg is not None:
            return [self.vgg(x)]
        if self.backbone is not None:
            return list(self.backbone.forward_intermediates(x, indices=[1, 2, 3], intermediates_only=True, stop_early=True))
        return [self.classifier.features(x)]  # type: ignore[operator]


def choose_perceptual(setting: str) -> str:
    if setting == "auto":
        return "vgg16" if vgg16_weights() is not None else "classifier"
    return setting


# ---- the run ------------------------------------------------------------------------------------


@dataclass
class GeneratorResult:
    config: GeneratorConfig
    perceptual: str  # "vgg16" or "classifier": which network the perceptual loss used
    target_classes: list[str]
    initial_confidence: float  # mean target-class confidence before the first step
    history: list[dict[str, float]]  # per epoch: d_loss, g_loss, adv, cls, perc, confidence
    samples: list[Path]
    out_dir: Path
    real_images: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def confidences(self) -> list[float]:
        return [h["confidence"] for h in self.history]

    def summary(self) -> dict[str, Any]:
        return {"perceptual": self.perceptual, "target_classes": self.target_classes, "initial_confidence": self.initial_confidence,
                "first_epoch_confidence": self.confidences[0], "last_epoch_confidence": self.confidences[-1],
                "epochs": len(self.history), "real_images": self.real_images}


def _seed_all(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_real_images(items: Sequence[tuple[Path, str]], size: int) -> torch.Tensor:
    """uint8 [n, 3, size, size]: the real images, decoded once through the shared loader (kept compact in memory)."""
    arrays = [np.asarray(load_image(path).resize((size, size))) for path, _ in items]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _to_unit(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def _grid(images: torch.Tensor, columns: int, path: Path) -> Path:
    from PIL import Image

    make_grid = importlib.import_module("torchvision.utils").make_grid  # torchvision ships no type information
    grid = make_grid(((images.clamp(-1, 1) + 1) / 2).cpu(), nrow=columns, padding=2, pad_value=1.0)
    array = (grid.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return write_with(path, lambda p: Image.fromarray(array).save(p, format="PNG"))


def train_generator(
    classifier: Any,
    items: Sequence[tuple[Path, str]],
    config: GeneratorConfig,
    out_dir: Path,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> GeneratorResult:
    """Train generator and discriminator against the classifier on the real images ``items`` (path, class). The classifier
    is frozen in place (eval mode, no gradients for its parameters) and its weights never change."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = list(classifier.classes)
    wanted = [c.strip() for c in config.target_classes.split(",") if c.strip()] or classes
    unknown = sorted(set(wanted) - set(classes))
    if unknown:
        raise GeneratorError(f"target classes {unknown} are not classes of the classifier ({len(classes)} classes)")
    chosen = [(p, c) for p, c in items if c in wanted]
    empty = sorted(set(wanted) - {c for _, c in chosen})
    if empty:
        raise GeneratorError(f"no real images of target classes {empty[:5]}")
    _seed_all(config.seed)
    device = torch.device(resolve_device(config.device))
    examiner = classifier.to(device).eval()
    for p in examiner.parameters():
        p.requires_grad_(False)
    to_input = _normalizer(examiner, device)
    perceptual_kind = choose_perceptual(config.perceptual)
    perceptual = Perceptual(perceptual_kind, examiner, to_input).to(device)

    target_index = {c: i for i, c in enumerate(wanted)}  # the generator's own class ids
    examiner_index = torch.tensor([classes.index(c) for c in wanted], device=device)
    real = load_real_images(chosen, config.image_size)
    real_labels = torch.tensor([target_index[c] for _, c in chosen])
    generator = Generator(len(wanted), config.noise_dim, config.class_embedding_dim, config.base_channels, config.image_size).to(device)
    discriminator = Discriminator(config.disc_channels, config.image_size).to(device)
    g_opt = torch.optim.Adam(generator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
    d_opt = torch.optim.Adam(discriminator.parameters(), lr=config.learning_rate, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    data_rng = torch.Generator().manual_seed(config.seed)

    shown = wanted[: config.max_grid_classes]
    eval_generator = torch.Generator(device="cpu").manual_seed(config.seed + 1)
    fixed_noise = torch.randn(len(wanted) * config.samples_per_class, config.noise_dim, generator=eval_generator).to(device)
    fixed_labels = torch.arange(len(wanted), device=device).repeat_interleave(config.samples_per_class)

    def confidence() -> tuple[float, torch.Tensor]:
        generator.eval()
        with torch.no_grad():
            fakes = torch.cat([generator(fixed_noise[i : i + 64], fixed_labels[i : i + 64]) for i in range(0, len(fixed_labels), 64)])
            probs = torch.softmax(examiner(to_input(fakes)).float(), dim=-1)
            conf = probs.gather(1, examiner_index[fixed_labels].unsqueeze(1)).mean()
        generator.train()
        return float(conf), fakes

    initial, _ = confidence()
    history: list[dict[str, float]] = []
    samples: list[Path] = []
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(real), generator=data_rng)
        sums = dict.fromkeys(("d_loss", "g_loss", "adv", "cls", "perc"), 0.0)
        steps = 0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            x_real = _to_unit(real[index]).to(device)
            labels = real_labels[index].to(device)
            noise = torch.randn(len(index), config.noise_dim, device=device)
            fake = generator(noise, labels)

            d_opt.zero_grad()
            real_logit, fake_logit = discriminator(x_real), discriminator(fake.detach())
            d_loss = bce(real_logit, torch.ones_like(real_logit)) + bce(fake_logit, torch.zeros_like(fake_logit))
            d_loss.backward()
            d_opt.step()

            g_opt.zero_grad()
            adv_logit = discriminator(fake)
            adv = bce(adv_logit, torch.ones_like(adv_logit))
            cls = F.cross_entropy(examiner(to_input(fake)), examiner_index[labels])
            with torch.no_grad():
                real_feats = perceptual(x_real)
            perc = torch.stack([F.mse_loss(f, r) for f, r in zip(perceptual(fake), real_feats, strict=True)]).mean()
            g_loss = config.adv_weight * adv + config.cls_weight * cls + config.perc_weight * perc
            g_loss.backward()
            g_opt.step()
            for key, value in (("d_loss", d_loss), ("g_loss", g_loss), ("adv", adv), ("cls", cls), ("perc", perc)):
                sums[key] += value.item()
            steps += 1
        conf, fakes = confidence()
        metrics = {k: v / steps for k, v in sums.items()} | {"confidence": conf}
        history.append(metrics)
        rows = torch.cat([fakes[fixed_labels == i] for i in range(len(shown))])
        samples.append(_grid(rows, config.samples_per_class, out_dir / f"samples_epoch_{epoch}.png"))
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    save_generator(generator, wanted, config, perceptual_kind, out_dir)
    write_json(out_dir / HISTORY_FILE, {"initial_confidence": initial, "history": history})
    return GeneratorResult(config, perceptual_kind, wanted, initial, history, samples, out_dir, len(real))


def run_generator_from_model(model_dir: str | Path, config: GeneratorConfig, out_dir: Path,
                             on_epoch: Callable[[int, dict[str, float]], None] | None = None,
                             root: DataRoot | None = None) -> GeneratorResult:
    """The generator on a saved classifier's training images (its train split)."""
    from aesthetic_platform.characters.prototypes import load_trained

    trained = load_trained(model_dir, config.device, root)
    return train_generator(trained.model, trained.part("train"), config, out_dir, on_epoch)


def save_generator(generator: Generator, classes: list[str], config: GeneratorConfig, perceptual: str, folder: Path) -> Path:
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in generator.state_dict().items()}
    write_with(folder / WEIGHTS_FILE, lambda p: save_file(state, str(p)))
    write_json(folder / CONFIG_FILE, {"dims": generator.dims, "classes": classes, "config": config.model_dump(), "perceptual": perceptual})
    return folder


def load_generator(folder: Path) -> tuple[Generator, list[str]]:
    from safetensors.torch import load_file

    meta = json.loads((Path(folder) / CONFIG_FILE).read_text())
    generator = Generator(**meta["dims"])
    generator.load_state_dict(load_file(str(Path(folder) / WEIGHTS_FILE)))
    return generator.eval(), list(meta["classes"])


def confidence_plot(result: GeneratorResult, folder: Path) -> dict[str, Path]:
    """Per-epoch loss terms and the examiner's target-class confidence."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    epochs = list(range(1, len(result.history) + 1))
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key in ("adv", "cls", "perc", "d_loss"):
        left.plot(epochs, [h[key] for h in result.history], label=key)
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot([0, *epochs], [result.initial_confidence, *result.confidences], marker="o")
    right.set_xlabel("epoch (0 = before training)")
    right.set_ylabel("classifier confidence in target class")
    right.set_ylim(0, 1)
    fig.tight_layout()
    path = write_with(folder / "generator_curves.png", lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return {"generator_curves": path}
