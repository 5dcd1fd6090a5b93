"""The LoRA dataset job, and the sensor that brings web uploads into Dagster.

The web builder (``aesthetic lora serve``) keeps one work folder per upload under
``<data root>/lora/<job id>``. Once a folder's build is done, the sensor registers its job
id as a ``lora_upload`` partition and requests one run of the five stages with the config
the folder was built with, so the stages come back "up to date" (same fingerprints) and
the upload's lineage, counts and previews show in the Dagster UI without recomputing.
"""

from pathlib import Path

import dagster as dg

from aesthetic_platform.assets.lora import (
    GROUP,
    LoraCaptionsConfig,
    LoraCropsConfig,
    LoraDedupConfig,
    LoraIngestConfig,
    LoraPackageConfig,
    lora_upload,
)
from aesthetic_platform.lora.pipeline import JOB_FILE, job_config, read_job
from aesthetic_platform.paths import check_key
from aesthetic_platform.resources import DataRootResource

UPLOADS_INTERVAL_S = 30
#: Each stage asset and its launchpad config class, by config section of ``LoraConfig``.
STAGE_ASSETS: dict[str, tuple[str, type[dg.Config]]] = {
    "ingest": ("lora_ingest", LoraIngestConfig),
    "dedup": ("lora_dedup", LoraDedupConfig),
    "crop": ("lora_crops", LoraCropsConfig),
    "caption": ("lora_captions", LoraCaptionsConfig),
    "package": ("lora_package", LoraPackageConfig),
}

lora_dataset_job = dg.define_asset_job(
    "lora_dataset_job",
    selection=dg.AssetSelection.groups(GROUP),
    partitions_def=lora_upload,
    description="Ingest, dedup, crop, caption and package one upload (one lora_upload partition).",
)


def finished_uploads(folder: Path) -> tuple[list[str], dict[str, str]]:
    """Job ids of work folders whose five stages are done, oldest first, and the folders whose job.json
    cannot be read (id -> why); unsafe folder names are ignored. One damaged folder never hides the others."""
    done, unreadable = [], {}
    for job_file in sorted(folder.glob(f"*/{JOB_FILE}")):
        key = job_file.parent.name
        try:
            check_key("lora_upload partition key", key)
        except ValueError:
            continue
        try:
            state = read_job(job_file.parent).get("state")
        except (OSError, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            unreadable[key] = f"{type(exc).__name__}: {exc}"
            continue
        if state == "done":
            done.append(key)
    return done, unreadable


def stored_run_config(work_dir: Path) -> dg.RunConfig:
    """The folder's own config as run config, so the run does not reset settings made in the web app.

    Validated here, as ``LoraConfig`` and then per stage as the launchpad class, so a job.json
    that no longer validates is a ``ValueError`` naming the field, not a run that fails at launch.
    """
    stored = job_config(work_dir)
    return dg.RunConfig(ops={
        asset: config_class.model_validate(getattr(stored, section).model_dump()) for section, (asset, config_class) in STAGE_ASSETS.items()
    })


@dg.sensor(
    job=lora_dataset_job,
    minimum_interval_seconds=UPLOADS_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Registers each finished web upload as a lora_upload partition and records its stages in one run.",
)
def lora_uploads_sensor(context: dg.SensorEvaluationContext, data_root: DataRootResource) -> dg.SensorResult | dg.SkipReason:
    folder = data_root.root().lora
    known = set(context.instance.get_dynamic_partitions(lora_upload.name or ""))
    configs: dict[str, dg.RunConfig] = {}
    done, unreadable = finished_uploads(folder)
    for key, why in unreadable.items():  # left alone (and logged on every pass) until its job.json is fixed
        context.log.error(f"upload {key}: its {JOB_FILE} cannot be read, so it is not registered: {why}")
    for key in done:
        if key in known:
            continue
        try:
            configs[key] = stored_run_config(folder / key)
        except ValueError as exc:  # left unregistered (and logged on every pass) until its job.json is fixed
            context.log.error(f"upload {key}: the config in its {JOB_FILE} is invalid, so it is not registered: {exc}")
    if not configs:
        return dg.SkipReason("no finished upload with a valid config that is not a partition yet")
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=key, run_key=f"lora-upload-{key}", run_config=config) for key, config in configs.items()],
        dynamic_partitions_requests=[lora_upload.build_add_request(list(configs))],
    )
