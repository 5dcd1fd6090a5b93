"""Knobs of the LoRA dataset builder, one pydantic model per stage (no Dagster here).

The Dagster side subclasses these models (``class X(dg.Config, DedupConfig)``), so the
launchpad shows exactly these fields and defaults. Dedup defaults are seed 004 §4.2's.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from aesthetic_platform.llm.settings import DEFAULT_CHAT_MODEL, EndpointSettings

FaceEmbedder = Literal["auto", "descriptor", "insightface"]


class IngestConfig(BaseModel):
    """Limits applied while unpacking a ZIP or walking a folder, and how accepted images are stored."""

    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1, description="A member/file larger than this (uncompressed) is refused.")
    max_total_bytes: int = Field(
        default=8 * 1024 * 1024 * 1024,
        ge=1,
        description="The archive's declared uncompressed total; above it the whole archive is refused.",
    )
    max_expansion_ratio: float = Field(
        default=200.0,
        gt=1,
        description="Uncompressed/compressed size; a member above it is refused, and the whole archive when its total is.",
    )
    max_members: int = Field(default=20_000, ge=1, description="More entries than this and the whole archive is refused.")
    max_pixels: int = Field(default=64_000_000, ge=1, description="Declared canvas above this (width x height) is refused as a pixel bomb.")
    max_side: int = Field(
        default=3072, ge=256, description="Accepted images are stored with their long side capped here (decoded with JPEG draft/reduce)."
    )
    store_format: Literal["png", "jpeg"] = Field(default="jpeg", description="How accepted images are stored under images/.")
    jpeg_quality: int = Field(default=95, ge=70, le=100, description="Quality of stored JPEGs.")


class DedupConfig(BaseModel):
    """Staged dedup: exact -> near (perceptual hash) -> same-shoot (faces) -> DBSCAN, keep the sharpest per cluster.

    Same-shoot rule for two images whose largest faces match in box position and size
    (centre within ``bbox_tol_c``, width/height within ``bbox_tol_wh``, both relative to the
    image): face cosine >= ``face_sim_th2`` and face SSIM >= ``face_ssim_th1`` -> same shoot;
    ``face_sim_th1`` <= cosine < ``face_sim_th2`` -> same shoot only when SSIM >= ``face_ssim_th2``;
    when a pose model is present its similarity must also reach ``pose_sim_th``.
    """

    face_sim_th1: float = Field(
        default=0.75, ge=0, le=1, description="Lower face-embedding cosine; below it two faces are never the same shoot."
    )
    face_sim_th2: float = Field(
        default=0.85, ge=0, le=1, description="Upper face-embedding cosine; at or above it the lower SSIM suffices."
    )
    pose_sim_th: float = Field(
        default=0.7, ge=0, le=1, description="Body-pose similarity needed too when a pose model (MediaPipe) is installed."
    )
    face_ssim_th1: float = Field(default=0.8, ge=0, le=1, description="Face SSIM needed when the cosine is at or above face_sim_th2.")
    face_ssim_th2: float = Field(default=0.9, ge=0, le=1, description="Face SSIM needed when the cosine is between the two thresholds.")
    bbox_tol_c: float = Field(default=0.1, ge=0, le=1, description="Largest face-centre shift, as a share of the image side.")
    bbox_tol_wh: float = Field(default=0.1, ge=0, le=1, description="Largest face width/height change, as a share of the image side.")
    keep_per_cluster: int = Field(default=2, ge=1, description="Sharpest images kept per same-shoot/near-duplicate cluster.")
    phash_max_distance: int = Field(
        default=10, ge=0, le=64, description="Hamming distance (of 64 bits) at or below which two perceptual hashes are near duplicates."
    )
    hash_mirrored: bool = Field(
        default=True, description="Also compare against the mirrored image's hash, so a horizontal flip is a near duplicate."
    )
    centre_hash_share: float = Field(
        default=0.92,
        gt=0,
        le=1,
        description="Also hash the central share of each image (per side), so a slightly cropped copy meets its original; 1 turns it off.",
    )
    dbscan_eps: float = Field(
        default=0.25, gt=0, le=1, description="DBSCAN radius over the combined distance (0 = identical, 1 = unrelated)."
    )
    dbscan_min_samples: int = Field(default=2, ge=2, description="DBSCAN core-point size; 2 groups any two images within eps.")
    face_embedder: FaceEmbedder = Field(
        default="auto",
        description="descriptor: built-in HOG face descriptor; insightface: model files must be on disk; auto: insightface if present.",
    )
    insightface_root: str = Field(default="", description="Folder of InsightFace models (default ~/.insightface); never downloaded.")
    analysis_side: int = Field(default=768, ge=128, description="Long side the images are analysed at (faces, sharpness, SSIM).")


class CropConfig(BaseModel):
    """Focus detection and the square training crop."""

    output_size: int = Field(default=1024, ge=64, description="Side of the square crop written to crops/.")
    min_source_side: int = Field(
        default=768, ge=1, description="A crop whose side in source pixels is below this is refused rather than upscaled (recorded)."
    )
    face_scale: float = Field(default=3.0, gt=1, description="Crop side as a multiple of the face box's larger side (portrait framing).")
    headroom: float = Field(default=1 / 3, gt=0, lt=1, description="Eye line's height in the crop, from the top (rule of thirds: 1/3).")
    eye_line: float = Field(default=0.4, gt=0, lt=1, description="Where the eyes sit inside a detected face box, from its top.")
    saliency_threshold: float = Field(default=0.5, gt=0, lt=1, description="Share of the saliency map's maximum that counts as salient.")


#: Triggers and class words become folder names (``10_ohwx person``) and caption tokens.
WORD_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
DEFAULT_TRIGGER = "ohwx"
DEFAULT_CAPTION_MODEL = DEFAULT_CHAT_MODEL
DEFAULT_CAPTION_PROMPT = (
    "Write a training caption for this photo of a person: one line of comma-separated tags covering framing, "
    "pose, expression, clothing, hair, background and lighting. Do not name or guess who the person is. "
    "Answer with the tags only."
)


class CaptionConfig(EndpointSettings):
    """Captions: offline tags unless an endpoint is configured, then a VLM through the ``openai`` SDK.

    Only ``base_url`` (or ``$AESTHETIC_CAPTION_BASE_URL``) switches the VLM on; the generic
    ``$OPENAI_BASE_URL`` alone never does, so nothing leaves the machine by accident. The
    API key is read from ``api_key_env`` at call time and never stored with a job.
    """

    models: list[str] = Field(
        default_factory=list,
        description=(
            "Model priority list: after a failed call (SDK retries spent) the next is tried "
            f"(empty: `model`, else {DEFAULT_CHAT_MODEL})."
        ),
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable that holds the endpoint's API key."
    )
    prompt: str = Field(default=DEFAULT_CAPTION_PROMPT, min_length=1, description="Instruction sent with each downscaled crop.")
    trigger: str = Field(default=DEFAULT_TRIGGER, pattern=WORD_PATTERN, description="Trigger word, first token of every caption.")
    max_side: int = Field(default=512, ge=64, le=2048, description="The crop is downscaled to this long side before it is sent.")
    max_tokens: int = Field(default=200, ge=16, description="Longest caption the VLM may write.")
    temperature: float = Field(default=0.2, ge=0, description="Sampling temperature of the VLM.")
    concurrency: int = Field(default=4, ge=1, le=32, description="VLM calls in flight at once (offline tags run one by one).")


class PackageConfig(BaseModel):
    """The kohya layout ``<repeats>_<trigger> <class_word>/`` and the ZIP around it."""

    repeats: int = Field(default=10, ge=1, le=10_000, description="Kohya repeats per image per epoch (the folder-name prefix).")
    trigger: str = Field(default=DEFAULT_TRIGGER, pattern=WORD_PATTERN, description="Trigger word of the folder name (as the captions').")
    class_word: str = Field(default="person", pattern=WORD_PATTERN, description="Class word in the folder name (regularisation class).")
    zip_name: str = Field(
        default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.zip$", description="Name of the ZIP; empty: <trigger>_lora_dataset.zip."
    )


class LoraConfig(BaseModel):
    """Every stage's knobs in one object: what the CLI, the web app and a job folder's ``job.json`` carry."""

    ingest: IngestConfig = Field(default_factory=IngestConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    crop: CropConfig = Field(default_factory=CropConfig)
    caption: CaptionConfig = Field(default_factory=CaptionConfig)
    package: PackageConfig = Field(default_factory=PackageConfig)
