"""Packaging: kohya folder with image + caption per kept image, a manifest of every file (dropped ones too), a ZIP."""

from __future__ import annotations

import hashlib
import io
import zipfile

import polars as pl
import pytest

from aesthetic_platform.lora.captions import caption_crops
from aesthetic_platform.lora.config import CaptionConfig, PackageConfig
from aesthetic_platform.lora.package import PackageError, package
from aesthetic_platform.lora.tables import MANIFEST_RECORDS
from tests.fixtures.lora_photos import tables_by_hand


@pytest.fixture
def work_dir(tmp_path):
    folder = tmp_path / "job"
    tables_by_hand(folder)
    caption_crops(folder, CaptionConfig(trigger="zxq"))
    return folder


def test_kohya_layout_manifest_and_zip_agree(work_dir):
    result = package(work_dir, PackageConfig(trigger="zxq", repeats=5, class_word="woman"))
    image_dir = work_dir / "dataset" / "5_zxq woman"
    assert result.image_dir == image_dir and sorted(p.name for p in image_dir.iterdir()) == ["iastro.png", "iastro.txt"]
    caption = (image_dir / "iastro.txt").read_text(encoding="utf-8")
    assert caption.startswith("zxq, ") and caption.endswith("\n")
    assert (image_dir / "iastro.png").read_bytes() == (work_dir / "crops" / "iastro.png").read_bytes()

    manifest = {r.image_id: r for r in MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(result.manifest))}
    assert set(manifest) == {"iastro", "iastro2", "icat", "inotes"}  # every file of the upload, dropped ones too
    kept = manifest["iastro"]
    assert kept.status == "kept" and kept.category == "kept" and kept.source_name == "shoot/astronaut.jpg" and kept.sha256 == "a" * 64
    assert kept.cluster == 0 and kept.reason == "sharpest of its cluster"
    assert kept.focus_kind == "face" and kept.focus_box == [62, 14, 100, 60] and kept.crop_box == [20, 0, 140, 120]
    assert kept.crop_source == "auto" and kept.caption_source == "offline" and kept.caption_model == "offline-tags/v1"
    assert kept.caption == caption.strip() and kept.dataset_path == "5_zxq woman/iastro.png"
    duplicate = manifest["iastro2"]
    assert duplicate.status == "dropped" and duplicate.category == "dedup:near" and duplicate.lost_to == "iastro"
    assert duplicate.reason == "near duplicate (hamming 2)" and duplicate.dataset_path == ""
    assert duplicate.focus_kind == "face" and duplicate.focus_box == [62, 14, 100, 60] and duplicate.crop_box == []
    refused = manifest["icat"]
    assert refused.category == "crop:refused" and refused.crop_box == [0, 0, 20, 20] and "below min_source_side" in refused.reason
    assert manifest["inotes"].category == "ingest:skipped" and manifest["inotes"].reason == "not an image in an accepted format"
    assert result.kept == 1 and result.dropped == 3
    assert result.categories == {"crop:refused": 1, "dedup:near": 1, "ingest:skipped": 1, "kept": 1}

    assert result.zip_path == work_dir / "zxq_lora_dataset.zip"
    with zipfile.ZipFile(result.zip_path) as archive:
        names = set(archive.namelist())
        assert names == {"manifest.parquet", "5_zxq woman/iastro.png", "5_zxq woman/iastro.txt"}
        inside = pl.read_parquet(io.BytesIO(archive.read("manifest.parquet")))
        assert inside.equals(MANIFEST_RECORDS.read(result.manifest))
        for row in MANIFEST_RECORDS.rows(inside):
            if row.status == "kept":
                assert hashlib.sha256(archive.read(row.dataset_path)).hexdigest() == row.image_sha256
                assert archive.read(row.dataset_path.removesuffix(".png") + ".txt").decode() == row.caption + "\n"


def test_repackaging_replaces_the_folder_and_leaves_nothing_half_built(work_dir):
    package(work_dir, PackageConfig(trigger="zxq"))
    again = package(work_dir, PackageConfig(trigger="zxq", repeats=3, zip_name="mine.zip"))
    assert sorted(p.name for p in (work_dir / "dataset").iterdir()) == ["3_zxq person", "manifest.parquet"]
    assert again.zip_path.name == "mine.zip"
    assert not [p for p in work_dir.iterdir() if p.name.startswith(".dataset")]


def test_mismatched_trigger_and_missing_captions_are_refused_by_name(work_dir):
    with pytest.raises(PackageError, match="captions start with trigger 'zxq' but the package trigger is 'other'"):
        package(work_dir, PackageConfig(trigger="other"))
    (work_dir / "captions.parquet").unlink()
    with pytest.raises(PackageError, match="iastro .*has a crop but no caption"):
        package(work_dir, PackageConfig(trigger="zxq"))
    assert not (work_dir / "dataset").exists()


def test_package_config_refuses_unsafe_folder_words():
    with pytest.raises(ValueError, match="trigger"):
        PackageConfig(trigger="../x")
    with pytest.raises(ValueError, match="class_word"):
        PackageConfig(class_word="a/b")
