"""Focus detection and the square training crop of every image dedup kept.

Focus, in order: the largest face dedup found (``dedup.parquet`` ``face_box``), else the
salient region of OpenCV's spectral-residual saliency map (``cv2.saliency``, opencv-contrib),
else the image centre.

The crop is a square:

* **face**: side ``face_scale`` x the face's larger side, but never smaller than
  ``output_size`` when the image is big enough (a tighter crop would only be enlarged) and
  never larger than the image's short side; the face is centred horizontally and the eye
  line (``eye_line`` down the face box) sits ``headroom`` (1/3) down the crop, the rule of
  thirds; the square is then shifted, not shrunk, to stay inside the image, so the whole
  face box stays in it;
* **saliency / centre**: the largest square (the short side) centred on the focus and
  shifted inside the image.

A manual box (``overrides[image_id] = (left, top, right, bottom)`` in stored-image pixels)
replaces the automatic one; a non-square box becomes the square on its centre with its
longer side. A crop whose side is under ``min_source_side`` is refused rather than enlarged
(the upscale it would need is recorded); otherwise it is resized to ``output_size``².
"""

from __future__ import annotations

import math
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from aesthetic_platform.atomic import swap_dir, write_with
from aesthetic_platform.images import load_image
from aesthetic_platform.lora.config import CropConfig
from aesthetic_platform.lora.schemas import (
    CROP_RECORDS,
    CROPS_DIR,
    CROPS_TABLE,
    DEDUP_DECISIONS,
    DEDUP_TABLE,
    INGEST_RECORDS,
    INGEST_TABLE,
    CropRecord,
)

Progress = Callable[[int, int, str], None]
Box = tuple[int, int, int, int]
#: Long side the saliency map is computed at (the spectral residual works on a coarse image anyway).
SALIENCY_SIDE = 256
#: A saliency map whose standard deviation is under this share of its mean has no salient region.
FLAT_SALIENCY = 0.05


@dataclass
class CropResult:
    work_dir: Path
    table_path: Path
    records: list[CropRecord] = field(default_factory=list)

    @property
    def cropped(self) -> int:
        return sum(1 for r in self.records if r.status == "cropped")

    @property
    def refused(self) -> int:
        return sum(1 for r in self.records if r.status == "refused")

    def by_focus(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.records:
            counts[record.focus_kind] = counts.get(record.focus_kind, 0) + 1
        return counts


def saliency_box(rgb: np.ndarray, threshold: float) -> Box | None:
    """Bounding box of the largest salient blob (spectral residual map >= threshold x its max), in ``rgb`` pixels."""
    height, width = rgb.shape[:2]
    scale = SALIENCY_SIDE / max(height, width)
    small = cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA)
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()  # type: ignore[attr-defined]
    ok, saliency = detector.computeSaliency(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if not ok or saliency is None or float(saliency.max()) <= 0:
        return None
    saliency = cv2.GaussianBlur(saliency.astype(np.float32), (0, 0), 3)
    if float(saliency.std()) < FLAT_SALIENCY * float(saliency.mean()):
        return None  # a flat map: nothing stands out (a plain or uniformly textured picture)
    mask = (saliency >= threshold * float(saliency.max())).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count <= 1:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[best, :4])
    back = 1 / scale
    return (
        max(0, math.floor(x * back)),
        max(0, math.floor(y * back)),
        min(width, math.ceil((x + w) * back)),
        min(height, math.ceil((y + h) * back)),
    )


def _shift_inside(left: float, top: float, side: float, width: int, height: int) -> Box:
    left = min(max(0.0, left), width - side)
    top = min(max(0.0, top), height - side)
    return round(left), round(top), round(left) + round(side), round(top) + round(side)


def face_crop(face: Box, width: int, height: int, config: CropConfig) -> Box:
    """The rule-of-thirds square around a face (module docstring)."""
    face_w, face_h = face[2] - face[0], face[3] - face[1]
    short = min(width, height)
    side = min(short, max(config.face_scale * max(face_w, face_h), min(config.output_size, short)))
    eyes = face[1] + config.eye_line * face_h
    left = (face[0] + face[2]) / 2 - side / 2
    top = eyes - config.headroom * side
    top = min(top, face[1])  # very tight framings: never cut the top of the face
    return _shift_inside(left, top, side, width, height)


def centred_crop(focus: Box, width: int, height: int) -> Box:
    side = min(width, height)
    return _shift_inside((focus[0] + focus[2]) / 2 - side / 2, (focus[1] + focus[3]) / 2 - side / 2, side, width, height)


def manual_crop(box: Box, width: int, height: int) -> tuple[Box, str]:
    """The manual box as a square inside the image; raises ValueError for a box that is not a box or lies outside."""
    left, top, right, bottom = (int(v) for v in box)
    if right <= left or bottom <= top:
        raise ValueError(f"manual crop box {box} is empty (right <= left or bottom <= top)")
    if right <= 0 or bottom <= 0 or left >= width or top >= height:
        raise ValueError(f"manual crop box {box} lies outside the {width}x{height} image")
    side = min(max(right - left, bottom - top), width, height)
    square = _shift_inside((left + right) / 2 - side / 2, (top + bottom) / 2 - side / 2, side, width, height)
    note = "manual box" if square == (left, top, right, bottom) else f"manual box {list(box)} squared and fitted to {list(square)}"
    return square, note


def focus_and_crop(
    work_dir: Path,
    config: CropConfig,
    overrides: Mapping[str, tuple[int, int, int, int]] | None = None,
    progress: Progress | None = None,
) -> CropResult:
    """Crop every image dedup kept into crops/<image_id>.png and write crops.parquet.

    A re-run replaces crops/ whole (staged, then swapped in) and the table atomically.
    ``overrides`` naming an image that is not kept raises ValueError before anything is written.
    """
    work_dir = Path(work_dir)
    overrides = dict(overrides or {})
    ingested = {r.image_id: r for r in INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))}
    decisions = [d for d in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE)) if d.kept]
    kept_ids = {d.image_id for d in decisions}
    unknown = sorted(set(overrides) - kept_ids)
    if unknown:
        raise ValueError(f"manual crop boxes for images that dedup did not keep (or that do not exist): {', '.join(unknown)}")
    for image_id, box in overrides.items():
        if len(tuple(box)) != 4:
            raise ValueError(f"manual crop box of {image_id} must be (left, top, right, bottom), got {box!r}")
    staging = work_dir / f".{CROPS_DIR}.{uuid.uuid4().hex[:8]}.tmp"
    staging.mkdir(parents=True)
    records: list[CropRecord] = []
    try:
        for done, decision in enumerate(decisions, start=1):
            record = ingested.get(decision.image_id)
            if record is None or not record.path:
                raise ValueError(f"dedup.parquet names {decision.image_id}, which ingest.parquet does not hold as a stored image")
            face = tuple(decision.face_box) if len(decision.face_box) == 4 else None
            records.append(_crop_one(work_dir, staging, record.image_id, record.path, face, overrides.get(record.image_id), config))  # type: ignore[arg-type]
            if progress:
                progress(done, len(decisions), record.source_name)
        swap_dir(staging, work_dir / CROPS_DIR)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    table_path = CROP_RECORDS.write(records, work_dir / CROPS_TABLE)
    return CropResult(work_dir=work_dir, table_path=table_path, records=records)



def _crop_one(
    work_dir: Path, staging: Path, image_id: str, path: str, face: Box | None, manual: Box | None, config: CropConfig
) -> CropRecord:
    image = load_image(work_dir / path)
    width, height = image.size
    notes: list[str] = []
    if face is not None:
        kind, focus = "face", face
    else:
        rgb = np.asarray(image)
        found = saliency_box(rgb, config.saliency_threshold)
        kind, focus = ("saliency", found) if found is not None else ("centre", (0, 0, width, height))
    if manual is not None:
        try:
            box, note = manual_crop(manual, width, height)
        except ValueError as exc:
            return _record(image_id, kind, focus, list(manual), "manual", 0.0, "refused", str(exc))
        source = "manual"
        notes.append(note)
    else:
        box = face_crop(focus, width, height, config) if kind == "face" else centred_crop(focus, width, height)
        source = "auto"
    side = box[2] - box[0]
    upscale = config.output_size / side
    if side < config.min_source_side:
        reason = (
            f"crop side {side} px is under min_source_side {config.min_source_side} px: "
            f"reaching {config.output_size} px would upscale {upscale:.2f}x"
        )
        return _record(image_id, kind, focus, list(box), source, upscale, "refused", reason)
    if upscale > 1:
        notes.append(f"upscaled {upscale:.2f}x")
    crop = image.crop(box).resize((config.output_size, config.output_size), Image.Resampling.LANCZOS)
    target = staging / f"{image_id}.png"
    write_with(target, lambda tmp: crop.save(tmp, format="PNG", compress_level=3))
    return _record(image_id, kind, focus, list(box), source, upscale, "cropped", "; ".join(notes), f"{CROPS_DIR}/{image_id}.png")


def _record(
    image_id: str, kind: str, focus: Box, box: list[int], source: str, upscale: float, status: str, reason: str, path: str = ""
) -> CropRecord:
    return CropRecord.model_validate(
        {
            "image_id": image_id,
            "focus_kind": kind,
            "focus_box": [int(v) for v in focus],
            "crop_box": [int(v) for v in box],
            "crop_source": source,
            "upscale": round(upscale, 4),
            "status": status,
            "reason": reason,
            "path": path,
        }
    )
