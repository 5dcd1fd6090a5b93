"""LoRA portrait dataset (seed 004): one ``lora_upload`` partition per upload, one asset per builder stage.

Each asset is a thin call into ``aesthetic_platform.lora.pipeline.run_stage`` on the work
folder ``<data root>/lora/<partition key>`` (the web builder's job folders live there too,
so a web upload's job id works as a partition key). The launchpad config of an asset is
that stage's core config; the other stages keep what the folder last ran with.

Re-runs recompute only what depends on a change: every stage has a fingerprint of its own
settings and of the stage before it (stored in the folder's ``job.json``), and a stage whose
fingerprint and outputs are unchanged returns at once (``recomputed: false``). Materializing
the whole group after a dedup threshold change therefore leaves ingest untouched; after a
crop setting change, ingest and dedup. The fingerprint is also the materialization's data
version, and each asset's code version hashes the core modules it runs.
"""

import base64
import io
from pathlib import Path
from typing import Any

import dagster as dg
from PIL import Image
from pydantic import BaseModel, Field

from aesthetic_platform.assets.metadata import code_version_of, root_path, table_metadata
from aesthetic_platform.assets.progress import ThrottledProgress
from aesthetic_platform.lora.config import CaptionConfig, CropConfig, DedupConfig, IngestConfig, LoraConfig, PackageConfig
from aesthetic_platform.lora.pipeline import JobError, StageOutcome, init_job, job_config, package_path, read_job, run_stage
from aesthetic_platform.lora.schemas import CROP_RECORDS, CROPS_TABLE, DEDUP_DECISIONS, DEDUP_TABLE, INGEST_RECORDS, INGEST_TABLE
from aesthetic_platform.lora.tables import CAPTION_RECORDS, CAPTIONS_TABLE, MANIFEST_RECORDS, MANIFEST_TABLE
from aesthetic_platform.paths import check_key
from aesthetic_platform.resources import DataRootResource

GROUP = "lora_dataset"
LORA_UPLOAD = "lora_upload"
#: One partition per upload (a ZIP or folder of one person's photos); add keys in the UI or with
#: ``instance.add_dynamic_partitions("lora_upload", [...])``; web uploads use their job id.
lora_upload = dg.DynamicPartitionsDefinition(name=LORA_UPLOAD)
PREVIEW_TILES = 24
PREVIEW_SIDE = 96


class LoraIngestConfig(dg.Config, IngestConfig):
    """``IngestConfig`` on the launchpad, plus where the photos are."""

    source: str = Field(default="", description="ZIP or folder of photos; empty: the input this upload already recorded.")


class LoraDedupConfig(dg.Config, DedupConfig):
    """``DedupConfig`` on the launchpad (same fields, same defaults: seed 004 §4.2)."""


class LoraCropsConfig(dg.Config, CropConfig):
    """``CropConfig`` on the launchpad (same fields, same defaults)."""


class LoraCaptionsConfig(dg.Config, CaptionConfig):
    """``CaptionConfig`` on the launchpad: empty base_url means offline tags and nothing sent anywhere."""


class LoraPackageConfig(dg.Config, PackageConfig):
    """``PackageConfig`` on the launchpad (same fields, same defaults)."""


def _work_dir(context: dg.AssetExecutionContext, data_root: DataRootResource) -> Path:
    """The partition's work folder; the key becomes a folder name, so only a safe alphabet is accepted."""
    try:
        key = check_key("lora_upload partition key", context.partition_key)
    except ValueError as exc:
        raise dg.Failure(description=str(exc)) from None
    return data_root.root().lora / key


def _run(
    context: dg.AssetExecutionContext, data_root: DataRootResource, stage: str, section: str, own: BaseModel
) -> tuple[Path, StageOutcome]:
    """The folder's stored config with this stage's section from the launchpad, run through the pipeline."""
    work_dir = _work_dir(context, data_root)
    stored = job_config(work_dir).model_dump()
    stored[section] = own.model_dump()
    config = LoraConfig.model_validate(stored)
    throttles: dict[str, ThrottledProgress] = {}

    def progress(name: str, done: int, total: int, message: str) -> None:
        if name not in throttles:
            throttles[name] = ThrottledProgress(lambda line: context.log.info(f"{name}: {line}"))
        throttles[name](done, total, message)

    try:
        outcome = run_stage(work_dir, stage, config, progress)
    except JobError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"{stage}: {'recomputed' if outcome.recomputed else 'up to date'} ({outcome.fingerprint})")
    return work_dir, outcome


def _result(outcome: StageOutcome, metadata: dict[str, Any]) -> dg.MaterializeResult:
    return dg.MaterializeResult(
        metadata={"recomputed": outcome.recomputed, "fingerprint": outcome.fingerprint, "seconds": outcome.seconds, **metadata},
        data_version=dg.DataVersion(outcome.fingerprint),
    )


def _json(value: Any) -> dg.MetadataValue:
    return dg.MetadataValue.json(value)


def _contact_sheet(paths: list[Path]) -> dg.MetadataValue:
    """Up to ``PREVIEW_TILES`` images side by side as one inline PNG, so the asset page shows the result."""
    tiles = paths[:PREVIEW_TILES]
    if not tiles:
        return dg.MetadataValue.md("(no images)")
    columns = min(8, len(tiles))
    rows = (len(tiles) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * PREVIEW_SIDE, rows * PREVIEW_SIDE), (240, 240, 240))
    for index, path in enumerate(tiles):
        with Image.open(path) as image:
            thumb = image.convert("RGB")
            thumb.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
        sheet.paste(thumb, ((index % columns) * PREVIEW_SIDE, (index // columns) * PREVIEW_SIDE))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return dg.MetadataValue.md(f"![preview](data:image/png;base64,{encoded})\n\n{len(paths)} images, first {len(tiles)} shown")


@dg.asset(partitions_def=lora_upload, group_name=GROUP, kinds={"parquet"}, code_version=code_version_of(
    "aesthetic_platform.lora.ingest", "aesthetic_platform.lora.schemas"))
def lora_ingest(context: dg.AssetExecutionContext, config: LoraIngestConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """The upload unpacked into images/: hostile members refused, non-images skipped, each with its reason."""
    work_dir = _work_dir(context, data_root)
    recorded = read_job(work_dir).get("source")
    if config.source or not recorded:
        if not config.source:
            raise dg.Failure(description=f"partition {context.partition_key!r} has no input yet: set `source` to a ZIP or folder")
        init_job(work_dir, Path(config.source), job_config(work_dir), job_id=context.partition_key)
    own = IngestConfig.model_validate(config.model_dump(exclude={"source"}))
    work_dir, outcome = _run(context, data_root, "ingest", "ingest", own)
    s = outcome.summary
    rows = INGEST_RECORDS.read(work_dir / INGEST_TABLE).height
    return _result(outcome, {
        "files": s["files"], "kept": s["kept"], "skipped": s["skipped"], "refused": s["refused"], "reasons": _json(s["reasons"]),
        **table_metadata(INGEST_RECORDS, rows, work_dir / INGEST_TABLE, data_root.root()),
    })


@dg.asset(partitions_def=lora_upload, group_name=GROUP, deps=[lora_ingest], kinds={"parquet"}, code_version=code_version_of(
    "aesthetic_platform.lora.dedup", "aesthetic_platform.lora.faces"))
def lora_dedup(context: dg.AssetExecutionContext, config: LoraDedupConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """Exact, near and same-shoot duplicates clustered; the sharpest ``keep_per_cluster`` kept, each drop with its reason."""
    own = DedupConfig.model_validate(config.model_dump())
    work_dir, outcome = _run(context, data_root, "dedup", "dedup", own)
    s = outcome.summary
    frame = DEDUP_DECISIONS.read(work_dir / DEDUP_TABLE)
    dropped = frame.filter(~frame["kept"]).head(20).select("image_id", "stage", "lost_to", "reason").to_dicts()
    return _result(outcome, {
        "images": s["images"], "kept": s["kept"], "dropped": s["dropped"], "clusters": s["clusters"], "with_face": s["with_face"],
        "dropped_by_stage": _json(s["dropped_by_stage"]), "dropped_examples": _json(dropped),
        **table_metadata(DEDUP_DECISIONS, frame.height, work_dir / DEDUP_TABLE, data_root.root()),
    })


@dg.asset(partitions_def=lora_upload, group_name=GROUP, deps=[lora_dedup], kinds={"parquet"}, code_version=code_version_of(
    "aesthetic_platform.lora.crop"))
def lora_crops(context: dg.AssetExecutionContext, config: LoraCropsConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """Square crops around the focus (face, saliency, centre) or the manual box; too-small crops refused, not upscaled."""
    own = CropConfig.model_validate(config.model_dump())
    work_dir, outcome = _run(context, data_root, "crops", "crop", own)
    s = outcome.summary
    rows = CROP_RECORDS.rows(CROP_RECORDS.read(work_dir / CROPS_TABLE))
    return _result(outcome, {
        "cropped": s["cropped"], "refused": s["refused"], "manual": s["manual"], "focus": _json(s["focus"]),
        "refusals": _json(s["refusals"]), "preview": _contact_sheet([work_dir / r.path for r in rows if r.status == "cropped"]),
        **table_metadata(CROP_RECORDS, len(rows), work_dir / CROPS_TABLE, data_root.root()),
    })


@dg.asset(partitions_def=lora_upload, group_name=GROUP, deps=[lora_crops], kinds={"parquet"}, code_version=code_version_of(
    "aesthetic_platform.lora.captions"))
def lora_captions(context: dg.AssetExecutionContext, config: LoraCaptionsConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """A caption per crop, trigger word first: offline tags, or a VLM (only the downscaled crop is sent) with model fallback."""
    own = CaptionConfig.model_validate(config.model_dump())
    work_dir, outcome = _run(context, data_root, "captions", "caption", own)
    s = outcome.summary
    frame = CAPTION_RECORDS.read(work_dir / CAPTIONS_TABLE)
    return _result(outcome, {
        "captioned": s["captioned"], "reused": s["reused"], "vlm_failures": s["vlm_failures"], "by_source": _json(s["by_source"]),
        "by_model": _json(s["by_model"]), "examples": _json(frame.head(5).select("image_id", "source", "model", "caption").to_dicts()),
        **table_metadata(CAPTION_RECORDS, frame.height, work_dir / CAPTIONS_TABLE, data_root.root()),
    })


@dg.asset(partitions_def=lora_upload, group_name=GROUP, deps=[lora_captions], kinds={"parquet", "zip"}, code_version=code_version_of(
    "aesthetic_platform.lora.package", "aesthetic_platform.lora.tables"))
def lora_package(context: dg.AssetExecutionContext, config: LoraPackageConfig, data_root: DataRootResource) -> dg.MaterializeResult:
    """The kohya folder ``<repeats>_<trigger> <class>/`` with image + caption each, the provenance manifest and the ZIP."""
    own = PackageConfig.model_validate(config.model_dump())
    work_dir, outcome = _run(context, data_root, "package", "package", own)
    s = outcome.summary
    frame = MANIFEST_RECORDS.read(work_dir / MANIFEST_TABLE)
    image_dir, zip_path = package_path(work_dir, s, "image_dir"), package_path(work_dir, s, "zip")
    images = sorted(image_dir.glob("*.png"))
    return _result(outcome, {
        "kept": s["kept"], "dropped": s["dropped"], "categories": _json(s["categories"]),
        "zip": root_path(data_root.root(), zip_path), "folder": root_path(data_root.root(), image_dir), "preview": _contact_sheet(images),
        **table_metadata(MANIFEST_RECORDS, frame.height, work_dir / MANIFEST_TABLE, data_root.root()),
    })


LORA_ASSETS = [lora_ingest, lora_dedup, lora_crops, lora_captions, lora_package]
