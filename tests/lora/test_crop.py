"""Focus and crop: the face box stays whole with rule-of-thirds headroom, refusals, manual boxes, saliency and centre."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.lora.config import CropConfig, DedupConfig, IngestConfig
from aesthetic_platform.lora.crop import face_crop, focus_and_crop, manual_crop
from aesthetic_platform.lora.dedup import dedup
from aesthetic_platform.lora.faces import HaarFaceDetector
from aesthetic_platform.lora.ingest import ingest
from aesthetic_platform.lora.schemas import CROP_RECORDS, DEDUP_DECISIONS, DEDUP_TABLE, DedupDecision
from tests.lora.conftest import build_zip, encoded, photo


def _contains(outer: list[int] | tuple[int, ...], inner: list[int] | tuple[int, ...]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and outer[2] >= inner[2] and outer[3] >= inner[3]


def _pipeline(tmp_path: Path, members: list[tuple[str, bytes]], name: str = "work") -> tuple[Path, dict[str, str]]:
    work = tmp_path / name
    records = ingest(build_zip(tmp_path / f"{name}.zip", members), work, IngestConfig()).records
    dedup(work, DedupConfig(analysis_side=512))
    return work, {r.source_name: r.image_id for r in records}


def test_astronaut_crop_holds_the_whole_face_with_eyes_near_the_upper_third(tmp_path: Path):
    astronaut = photo("astronaut")
    large = photo("astronaut", 2048)
    work, ids = _pipeline(tmp_path, [("astronaut.png", encoded(astronaut, "PNG"))], "small")
    work_big, ids_big = _pipeline(tmp_path, [("large.jpg", encoded(large, quality=95))], "large")
    rows = {r.image_id: r for r in focus_and_crop(work, CropConfig(min_source_side=256)).records}
    rows |= {r.image_id: r for r in focus_and_crop(work_big, CropConfig()).records}
    ids |= ids_big

    haar = HaarFaceDetector(require_eyes=False, detect_side=max(astronaut.size)).detect(np.asarray(astronaut))[0].box
    small = rows[ids["astronaut.png"]]
    assert small.focus_kind == "face" and small.status == "cropped" and small.crop_source == "auto"
    assert _contains(small.crop_box, haar), (small.crop_box, haar)
    assert small.upscale == pytest.approx(2.0) and "upscaled 2.00x" in small.reason

    big = rows[ids["large.jpg"]]
    haar_big = HaarFaceDetector(require_eyes=False, detect_side=max(large.size)).detect(np.asarray(large))[0].box
    left, top, right, bottom = big.crop_box
    assert big.status == "cropped" and right - left == bottom - top and _contains(big.crop_box, haar_big)
    face_left, face_top, face_right, face_bottom = big.focus_box
    eyes = face_top + 0.4 * (face_bottom - face_top)
    assert (eyes - top) / (bottom - top) == pytest.approx(1 / 3, abs=0.02)  # eye line on the upper third
    assert ((face_left + face_right) / 2 - left) / (right - left) == pytest.approx(0.5, abs=0.02)  # face centred
    with Image.open(work_big / big.path) as crop:
        assert crop.size == (1024, 1024)


def test_small_sources_are_refused_not_upscaled_and_the_factor_is_recorded(tmp_path: Path):
    work, ids = _pipeline(tmp_path, [("astronaut.jpg", encoded(photo("astronaut")))])
    (record,) = focus_and_crop(work, CropConfig()).records
    assert record.status == "refused" and record.path == ""
    assert "under min_source_side 768" in record.reason and record.upscale == pytest.approx(2.0)
    assert list((work / "crops").iterdir()) == []
    assert CROP_RECORDS.read(work / "crops.parquet").height == 1


def test_saliency_then_centre_when_there_is_no_face(tmp_path: Path):
    flat = Image.fromarray(np.full((900, 1400, 3), 128, dtype=np.uint8))
    rocket = photo("rocket", 1400)  # 1400x934, no face
    work, ids = _pipeline(tmp_path, [("flat.png", encoded(flat, "PNG")), ("rocket.jpg", encoded(rocket))])
    rows = {r.image_id: r for r in focus_and_crop(work, CropConfig()).records}

    centre, salient = rows[ids["flat.png"]], rows[ids["rocket.jpg"]]
    assert centre.focus_kind == "centre" and centre.crop_box == [250, 0, 1150, 900] and centre.status == "cropped"
    assert salient.focus_kind == "saliency" and salient.status == "cropped"
    left, top, right, bottom = salient.crop_box
    assert right - left == bottom - top == rocket.height and 0 <= left and right <= rocket.width
    fx0, fy0, fx1, fy1 = salient.focus_box
    assert 0 < fx1 - fx0 < rocket.width and left <= (fx0 + fx1) / 2 <= right  # a region, not the whole picture, and in the crop


def test_a_manual_box_overrides_and_a_rerun_replaces_the_crops(tmp_path: Path):
    work, ids = _pipeline(tmp_path, [("a.jpg", encoded(photo("astronaut", 1600))), ("b.jpg", encoded(photo("rocket", 1600)))])
    a, b = ids["a.jpg"], ids["b.jpg"]
    auto = {r.image_id: r for r in focus_and_crop(work, CropConfig()).records}
    calls: list[tuple[int, int, str]] = []
    redone = focus_and_crop(work, CropConfig(), overrides={a: (100, 200, 900, 1000)}, progress=lambda *call: calls.append(call))
    manual = {r.image_id: r for r in redone.records}
    assert calls == [(1, 2, "a.jpg"), (2, 2, "b.jpg")]

    assert manual[a].crop_source == "manual" and manual[a].crop_box == [100, 200, 900, 1000] and manual[a].status == "cropped"
    assert manual[a].focus_kind == auto[a].focus_kind == "face"
    assert manual[b] == auto[b]
    with Image.open(work / manual[a].path) as crop:
        assert crop.size == (1024, 1024)
    assert sorted(p.name for p in (work / "crops").iterdir()) == sorted(f"{i}.png" for i in (a, b))

    # Dropping an image from dedup drops its crop on the next run; boxes for unknown images are refused by name.
    table = DEDUP_DECISIONS.read(work / DEDUP_TABLE)
    rows = [DedupDecision.model_validate(r) for r in table.iter_rows(named=True)]
    DEDUP_DECISIONS.write([r.model_copy(update={"kept": r.image_id != b}) for r in rows], work / DEDUP_TABLE)
    assert [r.image_id for r in focus_and_crop(work, CropConfig()).records] == [a]
    assert [p.name for p in (work / "crops").iterdir()] == [f"{a}.png"]
    with pytest.raises(ValueError, match=f"did not keep.*{b}"):
        focus_and_crop(work, CropConfig(), overrides={b: (0, 0, 800, 800)})


def test_crop_geometry_squares_fits_and_refuses_bad_boxes():
    config = CropConfig()
    # A face near the top edge: the square shifts down to stay inside and still holds the face.
    box = face_crop((900, 10, 1100, 210), 2000, 1500, config)
    assert box[1] == 0 and box[2] - box[0] == box[3] - box[1] and _contains(box, (900, 10, 1100, 210))
    square, note = manual_crop((0, 0, 1200, 800), 1000, 900)
    assert square[2] - square[0] == square[3] - square[1] == 900 and square[0] >= 0 and square[2] <= 1000 and "squared" in note
    with pytest.raises(ValueError, match="empty"):
        manual_crop((10, 10, 5, 20), 100, 100)
    with pytest.raises(ValueError, match="outside"):
        manual_crop((200, 200, 300, 300), 100, 100)
