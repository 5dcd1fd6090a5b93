"""Captions for the cropped images: offline pixel tags by default, a VLM only when an endpoint is configured.

Privacy first: without ``CaptionConfig.base_url`` (or ``$AESTHETIC_CAPTION_BASE_URL``) no
client is even built, so nothing can leave the machine. With one, each crop is downscaled
to ``max_side`` and sent as a JPEG data URL with the caption prompt: the original photo, its
name, its EXIF and the other images never are. The client is the platform's one
``openai`` factory (SDK retries, attempts counted); a model that still fails hands over to
the next one of the priority list, and when every model fails the image gets the offline
tags with the errors recorded beside them.

A caption is reused while its crop (sha256) and the caption settings are unchanged, so after
one crop box is moved only that image is captioned again.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from PIL import Image

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.images import load_image
from aesthetic_platform.llm import EndpointSettings, count_attempts, openai_client
from aesthetic_platform.lora.config import DEFAULT_CAPTION_MODEL, CaptionConfig
from aesthetic_platform.lora.schemas import CROP_RECORDS, CROPS_TABLE, INGEST_RECORDS, INGEST_TABLE, CropRecord, IngestRecord
from aesthetic_platform.lora.tables import CAPTION_RECORDS, CAPTIONS_TABLE, CaptionRecord

Progress = Callable[[int, int, str], None]

CAPTION_BASE_URL_ENV = "AESTHETIC_CAPTION_BASE_URL"
OFFLINE_MODEL = "offline-tags/v1"
MAX_ERROR = 300
#: Side the offline tagger looks at: colour and light statistics need no more.
TAG_SIDE = 96
#: Face height as a share of the crop side, largest first: the framing word it earns.
FRAMINGS = ((0.45, "close-up"), (0.25, "head and shoulders portrait"), (0.12, "upper body shot"), (0.0, "full body shot"))
#: Hue wheel names (degrees where each starts), for the dominant colour.
HUES = (
    (15, "red"),
    (40, "orange"),
    (65, "yellow"),
    (160, "green"),
    (195, "cyan"),
    (255, "blue"),
    (290, "purple"),
    (335, "pink"),
    (361, "red"),
)
_PREFIX = re.compile(r"^\s*(caption|tags)\s*:\s*", re.I)


def endpoint_base_url(config: CaptionConfig) -> str:
    """The caption endpoint, or '' for offline tags (``$OPENAI_BASE_URL`` alone never turns the VLM on)."""
    return config.base_url or os.environ.get(CAPTION_BASE_URL_ENV, "")


def model_list(config: CaptionConfig) -> list[str]:
    """The priority list: ``models``, else ``model``, else the default (duplicates dropped, order kept)."""
    names = [m.strip() for m in config.models if m.strip()] or [config.model or DEFAULT_CAPTION_MODEL]
    return list(dict.fromkeys(names))


def settings_fingerprint(config: CaptionConfig) -> str:
    """What can change a caption: for the VLM its endpoint, models, prompt and sampling; offline only the trigger."""
    base_url = endpoint_base_url(config)
    if base_url:
        shaping: dict[str, Any] = {
            "base_url": base_url,
            "models": model_list(config),
            "prompt": config.prompt,
            "trigger": config.trigger,
            "max_side": config.max_side,
            "max_tokens": config.max_tokens,
            "temperature": config.temperature,
        }
    else:
        shaping = {"offline": OFFLINE_MODEL, "trigger": config.trigger}
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


# --- offline tags ----------------------------------------------------------------------------------


def framing_tag(record: CropRecord) -> str:
    """Framing from the face's height relative to the crop side (both in stored-image pixels)."""
    if record.focus_kind != "face" or len(record.focus_box) != 4 or len(record.crop_box) != 4:
        return "no face visible"
    face_h = record.focus_box[3] - record.focus_box[1]
    crop_side = max(1, record.crop_box[3] - record.crop_box[1])
    share = face_h / crop_side
    return next(word for floor, word in FRAMINGS if share >= floor)


def orientation_tag(width: int, height: int) -> str:
    if width <= 0 or height <= 0:
        return ""
    ratio = width / height
    return "vertical photo" if ratio < 0.9 else "horizontal photo" if ratio > 1.1 else "square photo"


def _hue_name(degrees: float) -> str:
    return next(name for limit, name in HUES if degrees < limit)


def colour_tags(image: Image.Image) -> list[str]:
    """Dominant colour (saturation-weighted hue vote), or monochrome / muted when little colour is there."""
    hsv = np.asarray(image.convert("HSV")).reshape(-1, 3).astype(np.float64) / 255.0
    hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
    weight = sat * (val > 0.15)
    if float(np.mean(sat)) < 0.08:
        return ["monochrome"]
    if float(np.mean(weight)) < 0.12:
        return ["muted colours"]
    votes: dict[str, float] = {}
    for degrees, w in zip(hue * 360.0, weight, strict=True):
        name = _hue_name(float(degrees))
        votes[name] = votes.get(name, 0.0) + float(w)
    best = max(sorted(votes), key=lambda n: votes[n])
    return [f"dominant {best} tones"]


def light_tags(pixels: np.ndarray) -> list[str]:
    """Brightness (mean luma), contrast (its spread) and colour temperature (red minus blue)."""
    rgb = pixels.reshape(-1, 3).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    mean, spread = float(luma.mean()), float(luma.std())
    tags = ["dark low-key lighting" if mean < 70 else "bright high-key lighting" if mean > 185 else "even lighting"]
    if spread > 70:
        tags.append("high contrast")
    elif spread < 30:
        tags.append("soft light")
    warmth = float(rgb[:, 0].mean() - rgb[:, 2].mean())
    if warmth > 20:
        tags.append("warm tones")
    elif warmth < -20:
        tags.append("cool tones")
    return tags


def offline_caption(crop: Image.Image, record: CropRecord, ingest: IngestRecord | None, trigger: str) -> str:
    """Deterministic tags from the pixels and the crop geometry; no model, no network."""
    small = crop.convert("RGB").resize((TAG_SIDE, TAG_SIDE), Image.Resampling.BOX)
    pixels = np.asarray(small)
    tags = [trigger, framing_tag(record)]
    if ingest is not None:
        tags.append(orientation_tag(ingest.source_width or ingest.width, ingest.source_height or ingest.height))
    tags += colour_tags(small) + light_tags(pixels)
    return ", ".join(t for t in tags if t)


# --- VLM -----------------------------------------------------------------------------------------------


def downscaled_jpeg(crop: Image.Image, max_side: int) -> tuple[bytes, int, int]:
    """The only pixels that leave the machine: the crop at ``max_side`` at most, as a JPEG (no metadata)."""
    image = crop.convert("RGB")
    scale = min(1.0, max_side / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if size != image.size:
        image = image.resize(size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue(), image.width, image.height


def with_trigger(text: str, trigger: str) -> str:
    """One line, the trigger word first exactly once."""
    line = ", ".join(part.strip() for part in re.split(r"[\r\n]+", text) if part.strip())
    line = _PREFIX.sub("", line).strip().strip('"').strip()
    if line.lower() == trigger.lower() or line.lower().startswith(trigger.lower() + ","):
        return trigger + line[len(trigger) :]
    return f"{trigger}, {line}"


class VLMCaptioner:
    """The configured endpoint and its model priority list."""

    def __init__(self, config: CaptionConfig, base_url: str) -> None:
        self.config = config
        self.models = model_list(config)
        endpoint = EndpointSettings(
            base_url=base_url,
            api_key=config.api_key or os.environ.get(config.api_key_env, ""),
            timeout_s=config.timeout_s,
            max_attempts=config.max_attempts,
        )
        self.client = openai_client(endpoint)

    def caption(self, crop: Image.Image) -> tuple[str | None, str, int, int, int, list[str]]:
        """(reply or None, model, sent width, sent height, attempts, errors of the models that failed)."""
        data, width, height = downscaled_jpeg(crop, self.config.max_side)
        url = "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
        messages: Any = [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": self.config.prompt},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
        errors: list[str] = []
        attempts = 0
        for model in self.models:
            with count_attempts() as counted:
                try:
                    response = self.client.chat.completions.create(
                        model=model, messages=messages, max_tokens=self.config.max_tokens, temperature=self.config.temperature
                    )
                    text = (response.choices[0].message.content or "").strip() if response.choices else ""
                    if not text:
                        raise ValueError("the reply holds no caption text")
                except Exception as exc:  # noqa: BLE001 - any failure hands over to the next model, with its reason kept
                    errors.append(f"{model}: {type(exc).__name__}: {exc}"[:MAX_ERROR])
                    continue
                finally:
                    attempts += counted.count
            return text, model, width, height, attempts, errors
        return None, "", width, height, attempts, errors


# --- the stage --------------------------------------------------------------------------------------------


@dataclass
class CaptionResult:
    table: Path
    captioned: int = 0
    reused: int = 0
    by_source: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    vlm_failures: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": str(self.table),
            "captioned": self.captioned,
            "reused": self.reused,
            "by_source": dict(self.by_source),
            "by_model": dict(self.by_model),
            "vlm_failures": self.vlm_failures,
        }


def read_captions(work_dir: Path) -> list[CaptionRecord]:
    path = Path(work_dir) / CAPTIONS_TABLE
    return CAPTION_RECORDS.rows(CAPTION_RECORDS.read(path)) if path.exists() else []


def caption_crops(work_dir: Path, config: CaptionConfig, progress: Progress | None = None) -> CaptionResult:
    """Caption every cropped image of ``work_dir`` into ``captions.parquet`` (reusing unchanged captions)."""
    work_dir = Path(work_dir)
    crops = [r for r in CROP_RECORDS.rows(CROP_RECORDS.read(work_dir / CROPS_TABLE)) if r.status == "cropped"]
    ingest = {r.image_id: r for r in INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))}
    previous = {r.image_id: r for r in read_captions(work_dir)}
    fingerprint = settings_fingerprint(config)
    base_url = endpoint_base_url(config)
    vlm = VLMCaptioner(config, base_url) if base_url else None
    result = CaptionResult(table=work_dir / CAPTIONS_TABLE)
    todo: list[tuple[int, CropRecord, str]] = []
    slots: list[CaptionRecord | None] = []
    for index, record in enumerate(crops):
        crop_sha = sha256_file(work_dir / record.path)
        old = previous.get(record.image_id)
        retry = vlm is not None and old is not None and old.source == "offline"  # every model failed last time
        if old is not None and old.crop_sha256 == crop_sha and old.settings == fingerprint and not retry:
            slots.append(old)
            result.reused += 1
        else:
            slots.append(None)
            todo.append((index, record, crop_sha))
    done = result.reused

    def one(job: tuple[int, CropRecord, str]) -> tuple[int, CaptionRecord]:
        index, record, crop_sha = job
        return index, _caption_one(work_dir / record.path, crop_sha, record, ingest.get(record.image_id), config, fingerprint, vlm)

    workers = config.concurrency if vlm is not None else 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="caption") as pool:
        for index, row in pool.map(one, todo) if workers > 1 else map(one, todo):
            slots[index] = row
            result.captioned += 1
            done += 1
            if progress is not None:
                progress(done, len(crops), f"{row.image_id}: {row.source} ({row.model})")
    rows = [row for row in slots if row is not None]
    for row in rows:
        result.by_source[row.source] = result.by_source.get(row.source, 0) + 1
        result.by_model[row.model] = result.by_model.get(row.model, 0) + 1
        result.vlm_failures += int(vlm is not None and row.source == "offline")
    if progress is not None and not todo:
        progress(len(crops), len(crops), "every caption reused")
    CAPTION_RECORDS.write(rows, result.table)
    return result


def _caption_one(
    crop_path: Path,
    crop_sha: str,
    record: CropRecord,
    ingest: IngestRecord | None,
    config: CaptionConfig,
    fingerprint: str,
    vlm: VLMCaptioner | None,
) -> CaptionRecord:
    crop = load_image(crop_path)
    common: dict[str, Any] = {"image_id": record.image_id, "trigger": config.trigger, "crop_sha256": crop_sha, "settings": fingerprint}
    if vlm is not None:
        text, model, width, height, attempts, errors = vlm.caption(crop)
        error_text = "; ".join(errors)
        if text is not None:
            return CaptionRecord(
                caption=with_trigger(text, config.trigger),
                source="vlm",
                model=model,
                sent_width=width,
                sent_height=height,
                attempts=attempts,
                errors=error_text,
                **common,
            )
        fallback = offline_caption(crop, record, ingest, config.trigger)
        return CaptionRecord(
            caption=fallback,
            source="offline",
            model=OFFLINE_MODEL,
            sent_width=width,
            sent_height=height,
            attempts=attempts,
            errors=f"every model failed: {error_text}",
            **common,
        )
    return CaptionRecord(caption=offline_caption(crop, record, ingest, config.trigger), source="offline", model=OFFLINE_MODEL, **common)


def captions_frame(work_dir: Path) -> pl.DataFrame:
    """``captions.parquet`` as a frame (empty with the schema's columns when not written yet)."""
    path = Path(work_dir) / CAPTIONS_TABLE
    return CAPTION_RECORDS.read(path) if path.exists() else CAPTION_RECORDS.empty()
