"""Row models of the LoRA builder's tables, one pydantic model per table (see ``aesthetic_platform.schemas``).

Every table lives in one work folder; ``path`` columns are relative to that folder, so a
work folder can be moved or zipped whole. Boxes are ``[left, top, right, bottom]`` in pixels
of the stored image ``images/<image_id>.<ext>`` (EXIF orientation applied, long side capped
by ``IngestConfig.max_side``), the same convention as ``PIL.Image.crop``; an empty list means
no box.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.tables import Table

INGEST_TABLE = "ingest.parquet"
DEDUP_TABLE = "dedup.parquet"
CROPS_TABLE = "crops.parquet"
IMAGES_DIR = "images"
CROPS_DIR = "crops"

IngestStatus = Literal["kept", "skipped", "refused"]
DedupStage = Literal["unique", "exact", "near", "same_shoot", "cluster"]
FocusKind = Literal["face", "saliency", "centre"]
CropSource = Literal["auto", "manual"]
CropStatus = Literal["cropped", "refused"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestRecord(_Row):
    """One file of the upload: stored (kept), skipped (not a usable image) or refused (hostile or over a limit)."""

    image_id: str = Field(description="'i' + first 15 hex of sha256(source_name, file sha256); unique within one ingest")
    source_name: str = Field(description="path inside the archive or folder, as given (never used to write)")
    sha256: str = Field(default="", description="sha256 of the file bytes; '' when refused before reading")
    pixel_sha256: str = Field(default="", description="sha256 of the stored RGB pixels (with their size); '' unless kept")
    path: str = Field(default="", description="stored image relative to the work folder, images/<image_id>.<ext>; '' unless kept")
    width: int = Field(default=0, ge=0, description="stored width (0 unless kept)")
    height: int = Field(default=0, ge=0, description="stored height (0 unless kept)")
    source_width: int = Field(default=0, ge=0, description="declared width of the original, EXIF orientation applied (0 if unknown)")
    source_height: int = Field(default=0, ge=0, description="declared height of the original, EXIF orientation applied (0 if unknown)")
    format: str = Field(default="", description="decoded format of the original: JPEG, PNG, WEBP, HEIF, ...")
    bytes: int = Field(default=0, ge=0, description="uncompressed size of the file")
    status: IngestStatus
    reason: str = Field(default="", description="why skipped or refused; for kept images what was done (e.g. 'downscaled 7680->3072')")


class DedupDecision(_Row):
    """The dedup verdict of one kept ingest image."""

    image_id: str
    cluster: int = Field(ge=0, description="group of images judged the same picture or shoot; a unique image has its own")
    kept: bool
    stage: DedupStage = Field(description="the stage that joined the image to its cluster ('unique': none did)")
    reason: str = Field(description="why kept or dropped, in words, with the measured distance or similarity")
    lost_to: str = Field(default="", description="image_id of the kept image it duplicates; '' when kept")
    sharpness: float = Field(ge=0, description="variance of the Laplacian of the grey image at analysis size; higher is sharper")
    face_box: list[int] = Field(default_factory=list, description="largest face [left, top, right, bottom]; [] when none found")
    faces: int = Field(default=0, ge=0, description="faces detected")
    phash: str = Field(default="", description="64-bit perceptual hash (hex) of the image")


class CropRecord(_Row):
    """The focus and square crop of one image kept by dedup."""

    image_id: str
    focus_kind: FocusKind = Field(description="face: largest detected face; saliency: OpenCV spectral-residual map; centre: neither")
    focus_box: list[int] = Field(description="the focus region [left, top, right, bottom]")
    crop_box: list[int] = Field(description="the square crop [left, top, right, bottom]; may extend past the image only when refused")
    crop_source: CropSource
    upscale: float = Field(ge=0, description="output side / crop side; above 1 means the crop was enlarged")
    status: CropStatus
    reason: str = Field(default="", description="why refused, or notes (e.g. 'crop shrunk to fit the image')")
    path: str = Field(default="", description="crops/<image_id>.png relative to the work folder; '' when refused")


INGEST_RECORDS = Table("lora_ingest", IngestRecord)
DEDUP_DECISIONS = Table("lora_dedup", DedupDecision)
CROP_RECORDS = Table("lora_crops", CropRecord)
