"""The character classifier: beats chance on held-out renders, round-trips, reports honest metrics."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aesthetic_platform.characters.classifier import (
    CLASSES_FILE,
    CharacterClassifier,
    create_backbone,
    evaluation_of,
    load_result_summary,
    plots,
    train_classifier,
)
from aesthetic_platform.characters.config import ClassifierConfig
from aesthetic_platform.characters.data import load_split
from tests.characters.conftest import TINY_CHARACTERS, TINY_CLASSIFIER


@pytest.mark.slow
def test_held_out_accuracy_beats_chance_with_a_ci(tiny_trained_classifier):
    result = tiny_trained_classifier
    test = result.test
    assert test.items == 30 and test.chance == pytest.approx(1 / TINY_CHARACTERS)
    assert test.ci_low <= test.accuracy <= test.ci_high
    assert test.ci_low > test.chance, test.metrics()  # the whole 95% CI lies above chance
    assert result.beats_chance()
    assert test.top5 >= test.accuracy
    assert np.asarray(test.confusion).sum() == 30 and np.trace(np.asarray(test.confusion)) == round(test.accuracy * 30)
    assert set(test.per_class) == set(result.classes)
    assert len(result.history) == TINY_CLASSIFIER.epochs
    val = [h["val_accuracy"] for h in result.history]
    assert val[result.best_epoch - 1] == max(val)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    summary = load_result_summary(result.model_dir)
    assert summary["test"]["accuracy"] == test.accuracy and summary["split_digest"] == result.split.digest()


@pytest.mark.slow
def test_saved_classifier_round_trips(tiny_trained_classifier, tiny_character_dataset: Path, tmp_path: Path):
    model = CharacterClassifier.from_pretrained(tiny_trained_classifier.model_dir)
    assert model.classes == tiny_trained_classifier.classes and model.config == TINY_CLASSIFIER
    # the split travels with the model, so later stages evaluate on the same images
    assert load_split(tiny_trained_classifier.model_dir).digest() == load_split(tiny_character_dataset).digest()
    paths = [tiny_character_dataset / rel for rel, _ in tiny_trained_classifier.split.parts["test"][:4]]
    batch = model.preprocess([Image.open(p) for p in paths])
    assert batch.shape == (4, 3, TINY_CLASSIFIER.image_size, TINY_CLASSIFIER.image_size)
    assert torch.equal(batch, model.preprocess(paths))
    with torch.no_grad():
        logits = model(batch)
        features = model.features(batch)
    assert logits.shape == (4, TINY_CHARACTERS) and features.shape == (4, model.feature_dim)
    np.testing.assert_allclose(model.predict_proba(paths), torch.softmax(logits, 1).numpy(), atol=1e-5)
    copy = model.save_pretrained(tmp_path / "copy")
    again = CharacterClassifier.from_pretrained(copy)
    with torch.no_grad():
        assert torch.equal(again(batch), logits)
    (copy / CLASSES_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="classes.json"):
        CharacterClassifier.from_pretrained(copy)


def test_weights_are_never_downloaded(tmp_path: Path):
    with pytest.raises(ValueError, match="never downloaded"):
        create_backbone("efficientnet_b0", 3, pretrained="ra_in1k")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        create_backbone("efficientnet_b0", 3, pretrained="ra_in1k", pretrained_file=str(tmp_path / "missing.safetensors"))


def test_local_pretrained_weights_are_loaded(tmp_path: Path):
    from safetensors.torch import save_file

    source = create_backbone("test_efficientnet", 1000)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "weights.safetensors"))
    model = create_backbone("test_efficientnet", 4, pretrained="r160_in1k", pretrained_file=str(tmp_path / "weights.safetensors"))
    stem = next(k for k in state if k.startswith("conv_stem"))
    assert torch.equal(model.state_dict()[stem], state[stem])
    assert model.get_classifier().out_features == 4


def test_classifier_refuses_bad_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        CharacterClassifier(TINY_CLASSIFIER, ["only"])
    with pytest.raises(ValueError, match="unique"):
        CharacterClassifier(TINY_CLASSIFIER, ["a", "a"])


def test_training_refuses_an_empty_validation_part(tiny_character_dataset: Path, tmp_path: Path):
    folder = tmp_path / "d"
    shutil.copytree(tiny_character_dataset, folder)
    (folder / "split.json").unlink()
    with pytest.raises(ValueError, match=r"\['val'\] are empty"):
        train_classifier(folder, ClassifierConfig(model_name="test_efficientnet", val_fraction=0.0, image_size=32), tmp_path / "m")


def test_evaluation_metrics_on_known_logits():
    classes = ["a", "b", "c"]
    logits = np.array([[3, 2, 1], [1, 3, 2], [1, 2, 3], [3, 1, 2]], dtype=np.float32)
    labels = np.array([0, 1, 1, 2])
    ev = evaluation_of(logits, labels, classes, train_labels=[0, 0, 0, 1])
    assert ev.accuracy == 0.5 and ev.correct == [1, 1, 0, 0]
    assert ev.top5 == 1.0  # three classes: top-5 is top-3
    assert ev.confusion == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert ev.per_class == {"a": 1.0, "b": 0.5, "c": 0.0}
    assert ev.chance == pytest.approx(1 / 3)  # the majority class "a" is 1 of 4 test labels: uniform wins
    assert evaluation_of(logits, labels, classes, train_labels=[1, 1]).chance == 0.5
    with pytest.raises(ValueError, match="empty"):
        evaluation_of(np.zeros((0, 3)), np.zeros(0), classes)


@pytest.mark.slow
def test_plots_are_written(tiny_trained_classifier, tmp_path: Path):
    written = plots(tiny_trained_classifier, tmp_path)
    assert set(written) == {"confusion_matrix", "learning_curves"}
    for path in written.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((tiny_trained_classifier.model_dir / CLASSES_FILE).read_text()) == tiny_trained_classifier.classes
