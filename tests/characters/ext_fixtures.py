"""Fixtures of the prototype, fusion, generator, CLI and extension-asset tests: one tiny rendered dataset and one
tiny classifier that has learned enough for its features to mean something (timm's ``test_efficientnet`` at 32×32
trains to well above chance in a few seconds on CPU), shared by the whole session.

The open-set tests of the prototype database get a world of their own with more characters:
features that tell *unseen* characters apart need a classifier trained on more than a handful
(16 characters × 20 images at 32×32, 20 epochs: ~10 s on an idle CPU, ~0.88 test accuracy)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

CHARACTERS = 8
IMAGES_PER_CHARACTER = 14
IMAGE_SIZE = 32


@dataclass(frozen=True)
class ExtWorld:
    dataset_dir: Path
    model_dir: Path
    test_accuracy: float
    chance: float


OPEN_SET_CHARACTERS = 16
OPEN_SET_IMAGES = 20
OPEN_SET_EPOCHS = 20

_WORLD: list[ExtWorld] = []  # built once per process: each test module that imports the fixture registers its own copy
_OPEN_SET_WORLD: list[ExtWorld] = []


@pytest.fixture(scope="session")
def ext_world(tmp_path_factory: pytest.TempPathFactory) -> ExtWorld:
    if not _WORLD:
        _WORLD.append(_build(tmp_path_factory))
    return _WORLD[0]


@pytest.fixture(scope="session")
def open_set_world(tmp_path_factory: pytest.TempPathFactory) -> ExtWorld:
    if not _OPEN_SET_WORLD:
        _OPEN_SET_WORLD.append(_build(tmp_path_factory, OPEN_SET_CHARACTERS, OPEN_SET_IMAGES, OPEN_SET_EPOCHS))
    return _OPEN_SET_WORLD[0]


def _build(tmp_path_factory: pytest.TempPathFactory, characters: int = CHARACTERS, images: int = IMAGES_PER_CHARACTER,
           epochs: int = 8) -> ExtWorld:
    from aesthetic_platform.characters.classifier import train_classifier
    from aesthetic_platform.characters.config import ClassifierConfig, DatasetConfig, RenderConfig
    from aesthetic_platform.characters.data import prepare_dataset
    from aesthetic_platform.characters.render import render_dataset

    root = tmp_path_factory.mktemp("characters-ext")
    dataset = root / "dataset"
    render_dataset(dataset, RenderConfig(characters=characters, images_per_character=images, image_size=IMAGE_SIZE))
    prepare_dataset(dataset, DatasetConfig(val_fraction=0.2, test_fraction=0.2))
    config = ClassifierConfig(model_name="test_efficientnet", image_size=IMAGE_SIZE, epochs=epochs, batch_size=16, lr=1e-2, device="cpu",
                              rotation_degrees=5, color_jitter=0.05)
    result = train_classifier(dataset, config, root / "classifier")
    return ExtWorld(dataset, root / "classifier", result.test.accuracy, result.test.chance)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'store.db'}"
