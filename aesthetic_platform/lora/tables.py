"""Row models of the tables the caption and package stages write (same house pattern as ``lora.schemas``).

``captions.parquet`` holds one caption per cropped image with where it came from (a VLM
and which model, or the offline tagger) and what it was made from (the crop's sha256 and a
fingerprint of the caption settings), so a re-run captions only crops that changed.
``manifest.parquet`` is the provenance of the packaged dataset: one row per ingested file,
kept or dropped, with every decision that led there.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.tables import Table

CAPTIONS_TABLE = "captions.parquet"
MANIFEST_TABLE = "manifest.parquet"
DATASET_DIR = "dataset"

CaptionSource = Literal["vlm", "offline"]
ManifestStatus = Literal["kept", "dropped"]
DecidedAt = Literal["ingest", "dedup", "crop", "package"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CaptionRecord(_Row):
    """The caption of one cropped image."""

    image_id: str
    caption: str = Field(description="the .txt content: trigger word first, then comma-separated tags or the VLM's words")
    source: CaptionSource = Field(description="vlm: written by a model on the configured endpoint; offline: the built-in pixel tagger")
    model: str = Field(description="the model that wrote it (the VLM's name, or offline-tags/<version>)")
    trigger: str = Field(description="trigger word the caption starts with")
    crop_sha256: str = Field(description="sha256 of the crop PNG the caption describes")
    settings: str = Field(description="fingerprint of the caption settings it was made with")
    sent_width: int = Field(default=0, ge=0, description="width of the downscaled crop sent to the VLM (0: nothing was sent)")
    sent_height: int = Field(default=0, ge=0, description="height of the downscaled crop sent to the VLM (0: nothing was sent)")
    attempts: int = Field(default=0, ge=0, description="HTTP requests made for this caption, over every model tried")
    errors: str = Field(default="", description="why earlier models in the priority list (or all of them) failed")


class ManifestRecord(_Row):
    """Provenance of one file of the upload in the packaged dataset (dropped files included)."""

    image_id: str
    source_name: str = Field(description="path inside the uploaded archive or folder")
    sha256: str = Field(description="sha256 of the uploaded file ('' when refused before reading)")
    status: ManifestStatus
    decided_at: DecidedAt = Field(description="the stage that kept it in the end or dropped it")
    reason: str = Field(description="why it was dropped, or the dedup reason it was kept for")
    category: str = Field(description="kept, or where and how it was dropped: ingest:skipped, dedup:near, crop:refused, ...")
    width: int = Field(default=0, ge=0, description="stored image width (0 unless ingested)")
    height: int = Field(default=0, ge=0, description="stored image height (0 unless ingested)")
    cluster: int = Field(default=-1, description="dedup cluster (-1: never reached dedup)")
    lost_to: str = Field(default="", description="image_id of the kept image it duplicates")
    focus_kind: str = Field(default="", description="face, saliency or centre ('' when never cropped nor face-checked)")
    focus_box: list[int] = Field(default_factory=list, description="focus [l, t, r, b]; for a dropped image the face dedup compared")
    crop_box: list[int] = Field(default_factory=list, description="square crop [left, top, right, bottom] in stored-image pixels")
    crop_source: str = Field(default="", description="auto or manual ('' when not cropped)")
    caption: str = Field(default="", description="caption text written beside the image")
    caption_source: str = Field(default="", description="vlm or offline ('' when not captioned)")
    caption_model: str = Field(default="", description="model that wrote the caption")
    dataset_path: str = Field(default="", description="image path inside the dataset folder and the ZIP ('' when dropped)")
    image_sha256: str = Field(default="", description="sha256 of the packaged image file ('' when dropped)")


CAPTION_RECORDS = Table("lora_captions", CaptionRecord)
MANIFEST_RECORDS = Table("lora_manifest", ManifestRecord)
