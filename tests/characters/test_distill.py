"""Distillation: soft targets from the frozen teacher, a stated gap within a knob-controlled bound, sizes and speed."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aesthetic_platform.characters.classifier import RESULT_FILE, WEIGHTS_FILE, CharacterClassifier
from aesthetic_platform.characters.config import DistillConfig
from aesthetic_platform.characters.data import load_split
from aesthetic_platform.characters.distill import cpu_images_per_second, distill, distillation_loss, paired_gap_ci, plots

STUDENT = DistillConfig(student_model="test_efficientnet", image_size=32, epochs=4, batch_size=16, lr=3e-3, max_gap=0.5,
                        speed_images=16, speed_batch_size=8, speed_repeats=1)


@pytest.fixture(scope="module")
def distilled(tiny_trained_classifier, tiny_character_dataset: Path, tmp_path_factory: pytest.TempPathFactory):
    return distill(tiny_trained_classifier.model_dir, tiny_character_dataset, STUDENT, tmp_path_factory.mktemp("student"))


@pytest.mark.slow
def test_student_is_compared_with_its_teacher_on_the_same_images(distilled, tiny_trained_classifier):
    r = distilled
    # the teacher is the frozen classifier: on the shared split it scores exactly what its training run reported
    assert r.teacher.test.accuracy == tiny_trained_classifier.test.accuracy
    assert r.split.digest() == tiny_trained_classifier.split.digest()
    assert r.gap == pytest.approx(r.teacher.test.accuracy - r.student.test.accuracy)
    assert r.gap_ci[0] <= r.gap <= r.gap_ci[1]
    assert r.within_max_gap == (r.gap <= STUDENT.max_gap)
    assert r.student.test.ci_low > r.student.test.chance, r.student.test.metrics()  # the student learnt, too
    tighter = dataclasses.replace(r, config=STUDENT.model_copy(update={"max_gap": r.gap - 0.01}))
    assert not tighter.within_max_gap  # the bound is the knob's, not a constant
    assert r.student.image_size == 32 and r.teacher.image_size == 48
    assert len(r.history) == STUDENT.epochs and r.history[-1]["train_loss"] < r.history[0]["train_loss"]
    assert r.history[-1]["train_teacher_agreement"] > r.history[0]["train_teacher_agreement"]


@pytest.mark.slow
def test_sizes_and_saved_student_are_real(distilled, tiny_trained_classifier):
    r = distilled
    student = CharacterClassifier.from_pretrained(r.student_dir)
    teacher = CharacterClassifier.from_pretrained(tiny_trained_classifier.model_dir)
    assert r.student.parameters == student.parameter_count() and r.teacher.parameters == teacher.parameter_count()
    assert r.student.file_bytes == (r.student_dir / WEIGHTS_FILE).stat().st_size
    assert r.teacher.file_bytes == (tiny_trained_classifier.model_dir / WEIGHTS_FILE).stat().st_size
    assert r.student.cpu_images_per_s > 0 and r.teacher.cpu_images_per_s > 0
    assert student.classes == teacher.classes and student.config.model_name == STUDENT.student_model
    assert load_split(r.student_dir).digest() == r.split.digest()
    paths = [p for p, _ in r.split.items("test", Path(tiny_trained_classifier.dataset_dir))]
    labels = np.array([label for _, label in r.split.parts["test"]])
    assert np.mean(student.predict_proba(paths).argmax(1) == labels) == pytest.approx(r.student.test.accuracy)
    summary = json.loads((r.student_dir / RESULT_FILE).read_text())
    assert summary["gap"] == r.gap and summary["within_max_gap"] == r.within_max_gap
    assert set(plots(r, r.student_dir.parent / "plots")) == {"confusion_matrix", "learning_curves", "teacher_vs_student"}


def test_distillation_loss_knobs():
    torch.manual_seed(0)
    student, teacher = torch.randn(8, 5), torch.randn(8, 5)
    labels = torch.randint(0, 5, (8,))
    total, soft, hard = distillation_loss(student, teacher, labels, temperature=2.0, alpha=0.0)
    assert torch.allclose(total, F.cross_entropy(student, labels))
    total, soft, _ = distillation_loss(student, teacher, labels, temperature=2.0, alpha=1.0)
    expected = F.kl_div(F.log_softmax(student / 2, 1), F.softmax(teacher / 2, 1), reduction="batchmean") * 4
    assert torch.allclose(total, expected) and torch.allclose(soft, expected)
    same, _, _ = distillation_loss(teacher, teacher, labels, temperature=3.0, alpha=1.0)
    assert same.abs().item() < 1e-6  # matching the teacher exactly costs nothing
    high_t, _, _ = distillation_loss(student, teacher, labels, temperature=8.0, alpha=1.0)
    assert not torch.allclose(high_t, total)


def test_paired_gap_ci_and_speed():
    teacher = np.array([1, 1, 1, 1, 0, 1, 1, 1])
    student = np.array([1, 0, 1, 1, 0, 1, 0, 1])
    low, high = paired_gap_ci(teacher, student)
    assert low <= 0.25 <= high and low >= 0
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1))
    assert cpu_images_per_second(model, 16, images=8, batch_size=4) > 0
