"""Shared fixtures of the character suite: a tiny rendered dataset, unseen characters, a tiny trained classifier.

Session-scoped and small: 6 characters × 20 images at 48 px, and a timm ``test_efficientnet``
(the EfficientNet building blocks at ~0.1 M parameters) trained for a few epochs, so every
test file can use a real trained model without paying for EfficientNet-B0 on CPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aesthetic_platform.characters.config import ClassifierConfig, DatasetConfig, RenderConfig

TINY_CHARACTERS = 6
TINY_IMAGES = 20
TINY_SIZE = 48
TINY_RENDER = RenderConfig(characters=TINY_CHARACTERS, images_per_character=TINY_IMAGES, image_size=TINY_SIZE)
TINY_SPLIT = DatasetConfig(val_fraction=0.2, test_fraction=0.25)
TINY_CLASSIFIER = ClassifierConfig(model_name="test_efficientnet", image_size=TINY_SIZE, epochs=8, batch_size=16, lr=3e-3)


@pytest.fixture(scope="session")
def tiny_character_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<dir>/character_000 … character_005/*.png`` with ``characters.json`` and ``split.json`` (train 11 / val 4 / test 5 each)."""
    from aesthetic_platform.characters.data import prepare_dataset
    from aesthetic_platform.characters.render import render_dataset

    folder = tmp_path_factory.mktemp("characters") / "dataset"
    render_dataset(folder, TINY_RENDER)
    prepare_dataset(folder, TINY_SPLIT)
    return folder


@pytest.fixture(scope="session")
def unseen_character_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three characters of the same world that the tiny dataset does not hold (designs 6..8), 10 images each."""
    from aesthetic_platform.characters.render import render_dataset

    folder = tmp_path_factory.mktemp("characters") / "unseen"
    render_dataset(folder, TINY_RENDER.model_copy(update={"characters": 3, "first_character": TINY_CHARACTERS,
                                                          "images_per_character": 10, "image_seed": 1}))
    return folder


@pytest.fixture(scope="session")
def tiny_trained_classifier(tiny_character_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    """A ``ClassifierResult`` (``.model_dir`` holds the saved classifier and its split)."""
    from aesthetic_platform.characters.classifier import train_classifier

    return train_classifier(tiny_character_dataset, TINY_CLASSIFIER, tmp_path_factory.mktemp("characters") / "classifier")
