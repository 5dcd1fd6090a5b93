"""The packaged training set: kohya folder, per-image captions, a provenance manifest and one ZIP.

Layout (what kohya-ss ``train_data_dir`` expects, plus the manifest beside the image folder)::

    dataset/
      manifest.parquet
      <repeats>_<trigger> <class_word>/
        <image_id>.png
        <image_id>.txt

The manifest has one row per file of the upload, dropped ones included, with the decision
that dropped or kept it (ingest verdict, dedup cluster and the image it lost to, crop
refusal), the focus and crop boxes and the caption's source and model, so every training
image can be traced back to its original and every missing one explained.

Nothing half-built is ever visible: the folder is assembled under a temporary name and
swapped in, the manifest and the ZIP are written to temporary files and renamed.
"""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aesthetic_platform.atomic import atomic_path, sha256_file, swap_dir
from aesthetic_platform.lora.captions import read_captions
from aesthetic_platform.lora.config import PackageConfig
from aesthetic_platform.lora.schemas import (
    CROP_RECORDS,
    CROPS_DIR,
    CROPS_TABLE,
    DEDUP_DECISIONS,
    DEDUP_TABLE,
    INGEST_RECORDS,
    INGEST_TABLE,
)
from aesthetic_platform.lora.tables import DATASET_DIR, MANIFEST_RECORDS, MANIFEST_TABLE, ManifestRecord

Progress = Callable[[int, int, str], None]


class PackageError(ValueError):
    """The earlier stages' tables do not fit together (run the stages again in order)."""


@dataclass
class PackageResult:
    dataset_dir: Path
    image_dir: Path
    manifest: Path
    zip_path: Path
    kept: int = 0
    dropped: int = 0
    categories: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset_dir": str(self.dataset_dir),
            "image_dir": str(self.image_dir),
            "manifest": str(self.manifest),
            "zip": str(self.zip_path),
            "kept": self.kept,
            "dropped": self.dropped,
            "categories": dict(self.categories),
        }


def folder_name(config: PackageConfig) -> str:
    return f"{config.repeats}_{config.trigger} {config.class_word}"


def zip_name(config: PackageConfig) -> str:
    return config.zip_name or f"{config.trigger}_lora_dataset.zip"


def manifest_rows(work_dir: Path) -> list[ManifestRecord]:
    """Provenance of every ingested file from the stage tables (``dataset_path`` and ``image_sha256`` empty)."""
    work_dir = Path(work_dir)
    ingest = INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))
    dedup = {r.image_id: r for r in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE))}
    crops = {r.image_id: r for r in CROP_RECORDS.rows(CROP_RECORDS.read(work_dir / CROPS_TABLE))}
    captions = {r.image_id: r for r in read_captions(work_dir)}
    rows = []
    for record in ingest:
        base: dict[str, Any] = {
            "image_id": record.image_id,
            "source_name": record.source_name,
            "sha256": record.sha256,
            "width": record.width,
            "height": record.height,
        }
        if record.status != "kept":
            rows.append(
                ManifestRecord(status="dropped", decided_at="ingest", reason=record.reason, category=f"ingest:{record.status}", **base)
            )
            continue
        decision = dedup.get(record.image_id)
        if decision is None:
            raise PackageError(f"{record.image_id} ({record.source_name}) has no dedup decision: run dedup again")
        base.update(cluster=decision.cluster, lost_to=decision.lost_to)
        if len(decision.face_box) == 4:  # what dedup compared, kept for dropped images too
            base.update(focus_kind="face", focus_box=list(decision.face_box))
        if not decision.kept:
            rows.append(
                ManifestRecord(status="dropped", decided_at="dedup", reason=decision.reason, category=f"dedup:{decision.stage}", **base)
            )
            continue
        crop = crops.get(record.image_id)
        if crop is None:
            raise PackageError(f"{record.image_id} ({record.source_name}) was kept by dedup but has no crop record: run crops again")
        base.update(focus_kind=crop.focus_kind, focus_box=list(crop.focus_box), crop_box=list(crop.crop_box), crop_source=crop.crop_source)
        if crop.status != "cropped":
            rows.append(ManifestRecord(status="dropped", decided_at="crop", reason=crop.reason, category="crop:refused", **base))
            continue
        caption = captions.get(record.image_id)
        if caption is None:
            raise PackageError(f"{record.image_id} ({record.source_name}) has a crop but no caption: run captions again")
        base.update(caption=caption.caption, caption_source=caption.source, caption_model=caption.model)
        rows.append(ManifestRecord(status="kept", decided_at="package", reason=decision.reason, category="kept", **base))
    return rows


def package(work_dir: Path, config: PackageConfig, progress: Progress | None = None) -> PackageResult:
    """Assemble ``dataset/`` and the ZIP from the crops and captions; write ``manifest.parquet``."""
    work_dir = Path(work_dir)
    rows = manifest_rows(work_dir)
    wrong = sorted({c.trigger for c in read_captions(work_dir)} - {config.trigger})
    if wrong:
        raise PackageError(
            f"the captions start with trigger {wrong[0]!r} but the package trigger is {config.trigger!r}: "
            "caption again with the same trigger"
        )
    sub = folder_name(config)
    staging = work_dir / f".{DATASET_DIR}-{uuid.uuid4().hex[:8]}"
    (staging / sub).mkdir(parents=True)
    try:
        final: list[ManifestRecord] = []
        kept = [r for r in rows if r.status == "kept"]
        done = 0
        for row in rows:
            if row.status != "kept":
                final.append(row)
                continue
            relative = f"{sub}/{row.image_id}.png"
            target = staging / relative
            shutil.copyfile(work_dir / CROPS_DIR / f"{row.image_id}.png", target)
            (staging / sub / f"{row.image_id}.txt").write_text(row.caption + "\n", encoding="utf-8")
            final.append(row.model_copy(update={"dataset_path": relative, "image_sha256": sha256_file(target)}))
            done += 1
            if progress is not None:
                progress(done, len(kept), f"{row.image_id}: packaged")
        MANIFEST_RECORDS.write(final, staging / MANIFEST_TABLE)
        dataset = work_dir / DATASET_DIR
        swap_dir(staging, dataset)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    MANIFEST_RECORDS.write(final, work_dir / MANIFEST_TABLE)
    zip_path = work_dir / zip_name(config)
    _write_zip(dataset, zip_path)
    categories = Counter(r.category for r in final)
    return PackageResult(
        dataset_dir=dataset,
        image_dir=dataset / sub,
        manifest=work_dir / MANIFEST_TABLE,
        zip_path=zip_path,
        kept=categories.get("kept", 0),
        dropped=len(final) - categories.get("kept", 0),
        categories=dict(sorted(categories.items())),
    )



def _write_zip(dataset: Path, zip_path: Path) -> None:
    """The dataset folder as one ZIP (PNGs stored, text and Parquet deflated), written to a temp file and renamed."""
    files = sorted(p for p in dataset.rglob("*") if p.is_file())
    with atomic_path(zip_path) as tmp, zipfile.ZipFile(tmp, "w") as archive:
        for path in files:
            method = zipfile.ZIP_STORED if path.suffix == ".png" else zipfile.ZIP_DEFLATED
            archive.write(path, path.relative_to(dataset).as_posix(), compress_type=method)
