"""New characters without retraining: prototypes in the embedding store, add_class, incremental update, unknown threshold."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import ExtWorld, sqlite_url

ext_world = ext_fixtures.ext_world

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _db(folder: Path, model_dir: Path):
    from aesthetic_platform.characters.classifier import CharacterClassifier
    from aesthetic_platform.characters.prototypes import PrototypeDatabase
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    store = Store.open(EmbeddingStoreConfig(db_url=sqlite_url(folder)))
    return store, PrototypeDatabase(store, CharacterClassifier.from_pretrained(model_dir), device="cpu")


def test_calibration_keeps_unknowns_at_the_target_false_accept_rate() -> None:
    from aesthetic_platform.characters.prototypes import PrototypeError, calibrate

    rng = np.random.default_rng(0)
    unknown = rng.uniform(0.0, 0.6, size=200)
    known = rng.uniform(0.4, 1.0, size=100)
    correct = rng.random(100) < 0.9
    cal = calibrate(known, correct, unknown, target_false_accept=0.05)
    assert np.mean(unknown >= cal.threshold) <= 0.05
    assert cal.false_accept == pytest.approx(10 / 200)  # floor(0.05 * 200) unknowns may pass, no more
    assert np.mean(unknown >= np.nextafter(cal.threshold, -np.inf)) > 0.05  # the lowest such threshold
    assert cal.known_accept == pytest.approx(np.mean(known >= cal.threshold))
    assert cal.known_accuracy == pytest.approx(np.mean((known >= cal.threshold) & correct))
    everything = calibrate(known, correct, unknown[:3], target_false_accept=0.5)  # 1 of 3 may pass
    assert np.sum(unknown[:3] >= everything.threshold) == 1
    with pytest.raises(PrototypeError, match="outside the prototype set"):
        calibrate(known, correct, np.array([]), 0.05)


@pytest.mark.slow
def test_add_class_recognises_unseen_characters_without_a_gradient_step(ext_world: ExtWorld, tmp_path: Path) -> None:
    from aesthetic_platform.characters.config import PrototypeConfig
    from aesthetic_platform.characters.prototypes import PrototypeDatabase, run_prototypes, weights_version
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    config = PrototypeConfig(calibration_characters=4, novel_characters=4, unknown_test_characters=4, images_per_character=12,
                             shots=5, target_false_accept=0.1, device="cpu")
    with Store.open(EmbeddingStoreConfig(db_url=sqlite_url(tmp_path))) as store:
        report, db = run_prototypes(store, ext_world.model_dir, config, tmp_path / "unseen")
        state_before = {k: v.clone() for k, v in db.model.state_dict().items()}
        version = weights_version(db.model)
        # the imprinted characters: nearest prototype is their own far more often than chance among 8 + 4 classes
        assert report.novel_chance == pytest.approx(1 / 12)
        assert report.novel_queries == 4 * 7
        assert report.novel_accuracy[0] >= 2.5 * report.novel_chance, report.summary()
        assert report.novel_accuracy[1] > report.novel_chance, report.summary()  # the CI's lower end too
        assert report.weights_unchanged
        # strangers never imprinted come back unknown at about the calibrated rate (4 characters x 10 images)
        assert report.calibration.false_accept <= config.target_false_accept
        assert report.unknown_rate[0] >= 1 - config.target_false_accept - 0.2, report.summary()
        # the live set is the calibrated base set: evaluation imprints were not committed
        current = db.require_current()
        assert current.sha256 == report.set_sha256 and len(current.classes) == 8 and current.threshold is not None
        # add_class for real: a 9th class, no gradient, same weights, model id unchanged
        strangers = sorted((p for p in (tmp_path / "unseen").rglob("*.png")), key=str)
        newcomer = sorted({p.parent.name for p in strangers})[-1]
        shots = [p for p in strangers if p.parent.name == newcomer][:5]
        for p in db.model.parameters():
            p.grad = None
        added = db.add_class("newcomer", shots)
        assert len(added.classes) == 9 and added.parent == current.sha256 and added.threshold == current.threshold
        assert all(p.grad is None for p in db.model.parameters())
        assert all(torch_equal(state_before[k], v) for k, v in db.model.state_dict().items())
        assert weights_version(db.model) == version
        # a second database on the same store and weights sees the same set
        again = PrototypeDatabase(store, db.model, device="cpu")
        assert again.require_current().sha256 == added.sha256


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


@pytest.mark.slow
def test_prototypes_are_stored_versioned_and_updated_incrementally(ext_world: ExtWorld, tmp_path: Path) -> None:
    from aesthetic_platform.characters.prototypes import (
        FEATURE_MODEL,
        PROTOTYPE_MODEL,
        UNKNOWN,
        PrototypeError,
        load_trained,
        normalize_rows,
    )
    from aesthetic_platform.images import ImageInputError

    trained = load_trained(ext_world.model_dir, "cpu")
    train = trained.by_class("train")
    store, db = _db(tmp_path, ext_world.model_dir)
    with store:
        assert db.current() is None
        with pytest.raises(PrototypeError, match="no prototypes"):
            db.predict([train["character_000"][0]])
        first = {name: paths[:3] for name, paths in train.items()}
        built = db.build(first)
        assert db.model_id.startswith(f"{FEATURE_MODEL}@") and db.prototype_record.model_id.startswith(f"{PROTOTYPE_MODEL}@")
        assert store.count(db.feature_record) == 8 * 3  # one cached feature row per image
        # the prototype is the mean of the members' centred, L2-normalised features
        hashes, raw = db.features_of(first["character_001"])
        names, protos = db.prototype_matrix(built)
        expected = normalize_rows(db.embed_space(raw, built).mean(axis=0, keepdims=True))[0]
        assert np.allclose(protos[names.index("character_001")], expected, atol=1e-5)
        assert sorted(db.members("character_001")) == sorted(hashes)
        assert store.get_items(hashes)[hashes[0]].meta == {"character": "character_001"}  # a later read keeps what build recorded

        # incremental update = the prototype of all members, computed from the old prototype and the new images only
        more = train["character_001"][3:6]
        updated = db.update_class("character_001", more + first["character_001"][:1])  # one image already a member
        assert updated.classes["character_001"].count == 6 and updated.parent == built.sha256
        all_hashes, all_raw = db.features_of(first["character_001"] + more)
        names, protos = db.prototype_matrix(updated)
        expected = normalize_rows(db.embed_space(all_raw, updated).mean(axis=0, keepdims=True))[0]
        assert np.allclose(protos[names.index("character_001")], expected, atol=1e-5)
        assert sorted(db.members("character_001")) == sorted(set(all_hashes))
        assert db.update_class("character_001", more).sha256 == updated.sha256  # nothing new: nothing changes
        # every set stays in the store; the pointer moved
        assert db.history() == [built.sha256, updated.sha256]
        set_item = store.get_items([built.sha256])[built.sha256]
        assert json.loads(set_item.text or "{}")["classes"]["character_001"]["count"] == 3

        # predictions come back from the store, not from memory
        predictions = db.predict(train["character_002"][3:5])
        assert all(p.top_class in built.classes and p.label != UNKNOWN for p in predictions)  # not calibrated: no unknown

        rows_before = store.count(db.feature_record)
        bad = tmp_path / "broken.png"
        bad.write_bytes(b"not a png")
        with pytest.raises(ImageInputError, match="broken.png"):
            db.add_class("someone", [train["character_003"][0], bad])
        assert store.count(db.feature_record) == rows_before and db.require_current().sha256 == updated.sha256
        with pytest.raises(PrototypeError, match="already exists"):
            db.add_class("character_002", train["character_002"][:2])
        with pytest.raises(PrototypeError, match="reserved"):
            db.add_class(UNKNOWN, train["character_002"][:2])
        with pytest.raises(PrototypeError, match="no class"):
            db.update_class("nobody", train["character_002"][:2])
