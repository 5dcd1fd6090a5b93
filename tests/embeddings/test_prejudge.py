"""Pre-judge filter: a registered image classifier flags candidates through the content audit's hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.embeddings import Store
from aesthetic_platform.embeddings.classifier import ClassifierSettings, labelled_vectors, train_classifier
from aesthetic_platform.embeddings.embedders import StudentImageEmbedder, image_item
from aesthetic_platform.embeddings.flow import embed_missing
from aesthetic_platform.embeddings.labels import LabelRecord, add_labels


def posters(folder: Path, n: int, warm: bool, seed: int) -> list[Path]:
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        base = np.array([220, 60, 40] if warm else [40, 80, 220], dtype=float)
        pixels = np.clip(base + rng.normal(0, 25, (48, 64, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"{'warm' if warm else 'cold'}{seed}_{i}.png")
        Image.fromarray(pixels).save(paths[-1])
    return paths


def test_registered_classifier_flags_rejected_candidates(data_root, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aesthetic_platform.audit import load_image_classifier
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer
    from aesthetic_platform.tracking import TrackingConfig
    from aesthetic_platform.tracking.classifiers import EXPERIMENT, log_classifier

    monkeypatch.delenv("AESTHETIC_DB_URL", raising=False)
    checkpoint = tmp_path / "student"
    AestheticScorer(named_config("tiny")).save_pretrained(checkpoint)
    warm, cold = posters(tmp_path, 20, True, 0), posters(tmp_path, 20, False, 0)
    embedder = StudentImageEmbedder(checkpoint, device="cpu")
    with Store.open(root=data_root) as store:
        assert not embed_missing(store, embedder, [image_item(p) for p in warm + cold]).failed
        add_labels(store, [LabelRecord(item=image_item(p).sha256, task="usable", annotator=who, label="yes" if p in warm else "no")
                           for p in warm + cold for who in ("ann", "bob")])
        data = labelled_vectors(store, "usable")
    result = train_classifier(data, ClassifierSettings(task="usable", epochs=60, patience=15))
    log_classifier(result, TrackingConfig.for_root(data_root, None, EXPERIMENT))

    monkeypatch.setenv("AESTHETIC_PREJUDGE_CHECKPOINT", str(checkpoint))
    screen = load_image_classifier("aesthetic_platform.audit.prejudge:usable_filter")  # the audit's own loader
    assert screen is not None and screen.name == "classifier:usable@v1"
    new_warm, new_cold = posters(tmp_path, 4, True, 1), posters(tmp_path, 4, False, 1)  # not embedded yet: embedded on the way
    verdicts = screen.classify([str(p) for p in new_warm + new_cold])
    assert [v.flagged for v in verdicts] == [False] * 4 + [True] * 4
    assert verdicts[-1].categories == ["classifier:usable"] and verdicts[-1].scores["classifier_version"] == 1.0
    assert verdicts[-1].scores["p_no"] >= 0.5 > verdicts[0].scores["p_no"]
    with Store.open(root=data_root) as store:
        assert store.existing(embedder.spec, [image_item(p).sha256 for p in new_warm + new_cold]) == {
            image_item(p).sha256 for p in new_warm + new_cold
        }
