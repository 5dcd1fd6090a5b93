"""Folder-per-class character datasets: scan and validate, split stratified and seeded, feed torch.

A dataset is ``<root>/<character>/<image>``; the folder name is the label. Every file with an
image suffix is opened through ``images.load_image`` when scanned, so an unreadable one is
reported by name (and left out) instead of failing an epoch later. The split is stored beside
the classes as ``split.json`` (relative paths), so the classifier, its student and every
stage built on them evaluate on the same held-out images.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from aesthetic_platform.atomic import write_json
from aesthetic_platform.characters.config import DatasetConfig
from aesthetic_platform.images import ImageInputError, load_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
SPLIT_FILE = "split.json"
SPLITS = ("train", "val", "test")
#: Images are decoded at most at this pixel count when scanned (enough to prove they decode).
SCAN_FIT_PIXELS = 256 * 256


class DatasetError(ValueError):
    """The dataset cannot be used as it is; the message names the folder, class or file."""


@dataclass
class DatasetScan:
    """What a dataset folder holds: readable images per class, and what could not be read."""

    root: Path
    classes: list[str]
    items: list[tuple[str, int]]  # (path relative to root, class index), readable images only
    unreadable: dict[str, str] = field(default_factory=dict)  # relative path -> why

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(self.classes, 0)
        for _, label in self.items:
            counts[self.classes[label]] += 1
        return counts

    @property
    def imbalance(self) -> float:
        """Largest over smallest class size (inf when a class has no readable image)."""
        sizes = list(self.counts.values())
        return max(sizes) / min(sizes) if sizes and min(sizes) > 0 else float("inf")


@dataclass
class Split:
    """A stratified split: relative image paths with class indices per part."""

    classes: list[str]
    parts: dict[str, list[tuple[str, int]]]
    seed: int
    val_fraction: float
    test_fraction: float

    def sizes(self) -> dict[str, int]:
        return {name: len(self.parts.get(name, [])) for name in SPLITS}

    def items(self, part: str, root: Path) -> list[tuple[Path, int]]:
        if part not in SPLITS:
            raise ValueError(f"unknown split part {part!r}; parts: {list(SPLITS)}")
        return [(Path(root) / rel, label) for rel, label in self.parts.get(part, [])]

    def digest(self) -> str:
        """A short hash of the split's content: two runs with the same digest saw the same images."""
        payload = json.dumps({"classes": self.classes, "parts": self.parts}, sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def as_dict(self) -> dict[str, Any]:
        return {"classes": self.classes, "seed": self.seed, "val_fraction": self.val_fraction, "test_fraction": self.test_fraction,
                "parts": {k: [[rel, label] for rel, label in v] for k, v in self.parts.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Split:
        parts = {k: [(str(rel), int(label)) for rel, label in v] for k, v in data["parts"].items()}
        return cls(list(data["classes"]), parts, int(data["seed"]), float(data["val_fraction"]), float(data["test_fraction"]))


@dataclass
class DatasetReport:
    """The checked dataset as downstream stages and the UI see it."""

    dataset_dir: str
    classes: list[str]
    counts: dict[str, int]
    imbalance: float
    unreadable: dict[str, str]
    split_sizes: dict[str, int]
    split_digest: str
    problems: list[str]

    @property
    def images(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def scan_dataset(root: Path) -> DatasetScan:
    """Every class folder of ``root`` and its images; unreadable files are listed with the reason, not raised."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DatasetError(f"dataset folder {root} has no class folders (expected <root>/<character>/*.png)")
    items: list[tuple[str, int]] = []
    unreadable: dict[str, str] = {}
    for label, name in enumerate(classes):
        for path in sorted((root / name).iterdir()):
            if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES or path.name.startswith("."):
                continue
            rel = f"{name}/{path.name}"
            try:
                load_image(path, fit_pixels=SCAN_FIT_PIXELS)
            except ImageInputError as e:
                unreadable[rel] = str(e)
                continue
            items.append((rel, label))
    return DatasetScan(root, classes, items, unreadable)


def check_dataset(scan: DatasetScan, config: DatasetConfig) -> list[str]:
    """Problems that make the dataset unusable under ``config`` (empty when it is fine)."""
    problems = []
    small = {name: n for name, n in scan.counts.items() if n < config.min_images_per_class}
    if small:
        problems.append(f"classes with fewer than {config.min_images_per_class} readable images: {small}")
    if len(scan.classes) < 2:
        problems.append(f"a classifier needs at least 2 classes, found {scan.classes}")
    if not small and scan.imbalance > config.max_imbalance:
        counts = scan.counts
        largest, smallest = max(counts, key=counts.__getitem__), min(counts, key=counts.__getitem__)
        problems.append(f"class imbalance {scan.imbalance:.1f} exceeds max_imbalance {config.max_imbalance} "
                        f"({largest}: {counts[largest]} images, {smallest}: {counts[smallest]})")
    return problems


def stratified_split(scan: DatasetScan, val_fraction: float, test_fraction: float, seed: int = 0) -> Split:
    """Per class, shuffled with a seed of its own name, the first images go to test, the next to val, the rest to train.

    Every class with at least 3 images gets one image in each non-empty fraction, so
    per-class accuracy is defined; a class's assignment does not depend on other classes."""
    by_class: dict[int, list[str]] = {i: [] for i in range(len(scan.classes))}
    for rel, label in scan.items:
        by_class[label].append(rel)
    parts: dict[str, list[tuple[str, int]]] = {name: [] for name in SPLITS}
    for label, paths in by_class.items():
        paths = sorted(paths)
        random.Random(f"split-{seed}-{scan.classes[label]}").shuffle(paths)
        n = len(paths)
        n_test = _share(n, test_fraction)
        n_val = _share(n, val_fraction)
        while n_test + n_val >= n and (n_test or n_val):  # keep at least one training image
            if n_val >= n_test and n_val:
                n_val -= 1
            else:
                n_test -= 1
        parts["test"] += [(p, label) for p in paths[:n_test]]
        parts["val"] += [(p, label) for p in paths[n_test:n_test + n_val]]
        parts["train"] += [(p, label) for p in paths[n_test + n_val:]]
    return Split(list(scan.classes), parts, seed, val_fraction, test_fraction)


def _share(n: int, fraction: float) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(n * fraction)) if n >= 3 else 0


def write_split(dataset_dir: Path, split: Split) -> Path:
    return write_json(Path(dataset_dir) / SPLIT_FILE, split.as_dict())


def load_split(folder: Path) -> Split | None:
    """The split stored in ``folder`` (a dataset or a saved model), or None when there is none."""
    path = Path(folder) / SPLIT_FILE
    if not path.exists():
        return None
    try:
        return Split.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as e:
        raise DatasetError(f"{path} is not a valid split file: {e}") from e


def split_for(dataset_dir: Path, val_fraction: float, test_fraction: float, seed: int) -> Split:
    """The dataset's stored split when it has one whose classes match its folders, else a fresh stratified split."""
    stored = load_split(dataset_dir)
    scan = scan_dataset(dataset_dir)
    if stored is not None:
        if stored.classes != scan.classes:
            raise DatasetError(f"{Path(dataset_dir) / SPLIT_FILE} names classes {stored.classes} but the folders are {scan.classes}; "
                               f"re-run the dataset step (or delete the stale split file)")
        return stored
    return stratified_split(scan, val_fraction, test_fraction, seed)


def prepare_dataset(dataset_dir: Path, config: DatasetConfig, fail_on_problems: bool = True) -> DatasetReport:
    """Scan, check and split a dataset; the split is written to ``split.json`` (kept if it already matches)."""
    scan = scan_dataset(dataset_dir)
    problems = check_dataset(scan, config)
    if problems and fail_on_problems:
        raise DatasetError(f"dataset {dataset_dir}: " + "; ".join(problems))
    split = stratified_split(scan, config.val_fraction, config.test_fraction, config.split_seed)
    try:
        stored = load_split(dataset_dir)
    except DatasetError:
        stored = None  # a broken split file is replaced, never trusted
    if stored is None or stored.as_dict() != split.as_dict():
        write_split(dataset_dir, split)
    return DatasetReport(
        str(dataset_dir), scan.classes, scan.counts, scan.imbalance, scan.unreadable, split.sizes(), split.digest(), problems
    )


# --- torch side ------------------------------------------------------------------------

IMAGENET_MEAN = (0.485, 0.456, 0.406)


def _transforms() -> Any:
    """``torchvision.transforms``, imported on use (torchvision ships no type information)."""
    import importlib

    return importlib.import_module("torchvision.transforms")


IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(
    image_size: int, rotation: float, hflip: float, jitter: float,
    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
) -> Callable[[Any], Any]:
    """Resize to the model side, random rotation, horizontal flip, colour jitter, normalisation (seed 002 §1)."""
    T = _transforms()

    steps: list[Any] = [T.Resize((image_size, image_size), antialias=True)]
    if rotation > 0:
        steps.append(T.RandomRotation(rotation))
    if hflip > 0:
        steps.append(T.RandomHorizontalFlip(hflip))
    if jitter > 0:
        steps.append(T.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=min(0.5, jitter / 4)))
    steps += [T.ToTensor(), T.Normalize(list(mean), list(std))]
    return T.Compose(steps)


def eval_transform(image_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> Callable[[Any], Any]:
    T = _transforms()

    return T.Compose([T.Resize((image_size, image_size), antialias=True), T.ToTensor(), T.Normalize(list(mean), list(std))])


class CharacterImageDataset(Dataset):
    """(tensor, label) pairs over (path, class index) items; images go through ``load_image``."""

    def __init__(self, items: Sequence[tuple[Path, int]], transform: Callable[[Any], Any], fit_pixels: int | None = None) -> None:
        self.items = list(items)
        self.transform = transform
        self.fit_pixels = fit_pixels

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        path, label = self.items[index]
        return self.transform(load_image(path, fit_pixels=self.fit_pixels)), label
