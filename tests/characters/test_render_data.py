"""The procedural renderer and the folder-per-class dataset: designs, descriptions, files, checks, split."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from aesthetic_platform.characters.config import DatasetConfig, RenderConfig
from aesthetic_platform.characters.data import (
    SPLIT_FILE,
    CharacterImageDataset,
    DatasetError,
    check_dataset,
    eval_transform,
    load_split,
    prepare_dataset,
    scan_dataset,
    split_for,
    stratified_split,
)
from aesthetic_platform.characters.render import (
    ATTRIBUTES,
    CHARACTERS_FILE,
    MIN_DIFFERENCES,
    character_specs,
    describe,
    load_characters,
    render_image,
)
from tests.characters.conftest import TINY_CHARACTERS, TINY_IMAGES, TINY_SIZE


def test_designs_are_a_stable_prefix_and_pairwise_distinct():
    many = character_specs(40, seed=3)
    assert character_specs(10, seed=3) == many[:10]
    assert character_specs(5, seed=3, start=10) == many[10:15]
    assert character_specs(10, seed=4) != many[:10]
    assert len({s.name for s in many}) == 40
    for i, a in enumerate(many):
        for b in many[:i]:
            assert sum(a.attributes()[k] != b.attributes()[k] for k in ATTRIBUTES) >= MIN_DIFFERENCES, (a, b)


def test_descriptions_carry_every_attribute_and_can_be_partial():
    spec = character_specs(1, seed=0, start=7)[0]
    text = describe(spec)
    for value in (spec.hair_colour, spec.eye_colour, spec.skin, spec.outfit, spec.outfit_colour):
        assert value in text
    assert describe(spec, ["eye_colour"]) == f"an anime character with {spec.eye_colour} eyes"
    assert spec.outfit not in describe(spec, ["hair_colour", "eye_colour"])
    assert describe(spec, []) == "an anime character"
    descriptions = {describe(s) for s in character_specs(30)}
    assert len(descriptions) == 30  # a description identifies its character
    with pytest.raises(ValueError, match="unknown attributes"):
        describe(spec, ["hair_length"])


def test_images_vary_but_the_design_stays(tmp_path: Path):
    spec = character_specs(1)[0]
    a = np.asarray(render_image(spec, 64, random.Random(1)))
    again = np.asarray(render_image(spec, 64, random.Random(1)))
    b = np.asarray(render_image(spec, 64, random.Random(2)))
    assert a.shape == (64, 64, 3)
    assert np.array_equal(a, again)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 10  # pose, background and light differ


def test_render_dataset_writes_folders_and_designs(tiny_character_dataset: Path):
    classes = sorted(p.name for p in tiny_character_dataset.iterdir() if p.is_dir())
    assert classes == [f"character_{i:03d}" for i in range(TINY_CHARACTERS)]
    assert all(len(list((tiny_character_dataset / c).glob("*.png"))) == TINY_IMAGES for c in classes)
    designs = load_characters(tiny_character_dataset)
    assert list(designs) == classes
    recorded = json.loads((tiny_character_dataset / CHARACTERS_FILE).read_text())
    assert recorded["characters"][0]["description"] == describe(designs["character_000"])
    from PIL import Image

    with Image.open(tiny_character_dataset / "character_000" / "0000.png") as image:
        assert image.size == (TINY_SIZE, TINY_SIZE)


def test_unseen_characters_are_new_designs(tiny_character_dataset: Path, unseen_character_dataset: Path):
    seen, unseen = load_characters(tiny_character_dataset), load_characters(unseen_character_dataset)
    assert not set(seen) & set(unseen)
    assert not {tuple(s.attributes().items()) for s in seen.values()} & {tuple(s.attributes().items()) for s in unseen.values()}
    assert sorted(unseen) == [f"character_{i:03d}" for i in range(TINY_CHARACTERS, TINY_CHARACTERS + 3)]


def test_render_config_is_checked():
    with pytest.raises(ValueError, match="scale_min"):
        RenderConfig(scale_min=1.2, scale_max=0.9)
    with pytest.raises(ValueError, match="below 0.9"):
        DatasetConfig(val_fraction=0.5, test_fraction=0.5)


def _small_copy(source: Path, target: Path, classes: int = 3, images: int = 6) -> Path:
    for name in sorted(p.name for p in source.iterdir() if p.is_dir())[:classes]:
        (target / name).mkdir(parents=True)
        for path in sorted((source / name).glob("*.png"))[:images]:
            shutil.copy(path, target / name / path.name)
    return target


def test_scan_reports_unreadable_files_and_ignores_other_files(tiny_character_dataset: Path, tmp_path: Path):
    folder = _small_copy(tiny_character_dataset, tmp_path / "d")
    (folder / "character_001" / "broken.png").write_bytes(b"not a png at all")
    (folder / "character_001" / "truncated.jpg").write_bytes((folder / "character_001" / "0000.png").read_bytes()[:100])
    (folder / "character_001" / "notes.txt").write_text("ignored")
    (folder / "README.md").write_text("ignored too")
    scan = scan_dataset(folder)
    assert scan.classes == ["character_000", "character_001", "character_002"]
    assert set(scan.unreadable) == {"character_001/broken.png", "character_001/truncated.jpg"}
    assert "broken.png" in scan.unreadable["character_001/broken.png"]
    assert scan.counts == {"character_000": 6, "character_001": 6, "character_002": 6}
    assert all("broken" not in rel and "truncated" not in rel for rel, _ in scan.items)
    report = prepare_dataset(folder, DatasetConfig())
    assert report.unreadable == scan.unreadable and report.images == 18


def test_checks_name_small_and_imbalanced_classes(tiny_character_dataset: Path, tmp_path: Path):
    folder = _small_copy(tiny_character_dataset, tmp_path / "d", classes=3, images=6)
    for path in sorted((folder / "character_002").glob("*.png"))[2:]:
        path.unlink()
    scan = scan_dataset(folder)
    assert scan.imbalance == 3.0
    problems = check_dataset(scan, DatasetConfig(min_images_per_class=3))
    assert len(problems) == 1 and "character_002" in problems[0]
    assert "imbalance 3.0" in check_dataset(scan, DatasetConfig(min_images_per_class=1, max_imbalance=2.0))[0]
    assert check_dataset(scan, DatasetConfig(min_images_per_class=1, max_imbalance=3.0)) == []
    with pytest.raises(DatasetError, match="character_002"):
        prepare_dataset(folder, DatasetConfig(min_images_per_class=3))
    assert not (folder / SPLIT_FILE).exists()
    with pytest.raises(DatasetError, match="does not exist"):
        scan_dataset(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no class folders"):
        scan_dataset(tmp_path / "empty")


def test_split_is_stratified_seeded_and_disjoint(tiny_character_dataset: Path):
    scan = scan_dataset(tiny_character_dataset)
    split = stratified_split(scan, 0.2, 0.25, seed=0)
    assert split.sizes() == {"train": 66, "val": 24, "test": 30}
    for part in ("train", "val", "test"):
        labels = [label for _, label in split.parts[part]]
        assert len(set(np.bincount(labels, minlength=TINY_CHARACTERS))) == 1  # every class equally in every part
    paths = [rel for part in split.parts.values() for rel, _ in part]
    assert len(paths) == len(set(paths)) == len(scan.items)
    assert stratified_split(scan, 0.2, 0.25, seed=0).digest() == split.digest()
    assert stratified_split(scan, 0.2, 0.25, seed=1).digest() != split.digest()
    # the split stored by the fixture is this one, and it is what training will use
    assert load_split(tiny_character_dataset).digest() == split.digest()
    assert split_for(tiny_character_dataset, 0.5, 0.1, seed=9).digest() == split.digest()


def test_split_keeps_a_training_image_in_tiny_classes(tiny_character_dataset: Path, tmp_path: Path):
    folder = _small_copy(tiny_character_dataset, tmp_path / "d", classes=2, images=3)
    split = stratified_split(scan_dataset(folder), 0.4, 0.4, seed=0)
    assert split.sizes() == {"train": 2, "val": 2, "test": 2}


def test_stale_split_file_is_refused(tiny_character_dataset: Path, tmp_path: Path):
    folder = _small_copy(tiny_character_dataset, tmp_path / "d")
    prepare_dataset(folder, DatasetConfig())
    shutil.rmtree(folder / "character_002")
    with pytest.raises(DatasetError, match="re-run the dataset step"):
        split_for(folder, 0.2, 0.2, 0)
    (folder / SPLIT_FILE).write_text("{not json")
    with pytest.raises(DatasetError, match="not a valid split file"):
        load_split(folder)
    assert prepare_dataset(folder, DatasetConfig(min_images_per_class=1)).classes == ["character_000", "character_001"]


def test_torch_dataset_yields_normalised_tensors(tiny_character_dataset: Path):
    split = load_split(tiny_character_dataset)
    dataset = CharacterImageDataset(split.items("val", tiny_character_dataset), eval_transform(32))
    x, y = dataset[0]
    assert len(dataset) == 24 and isinstance(x, torch.Tensor) and x.shape == (3, 32, 32)
    assert y == split.parts["val"][0][1]
    assert x.min() < 0 < x.max()  # normalised, not 0..1
