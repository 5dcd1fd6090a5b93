"""The shared embedding and label store (seed 003): image and prompt embeddings per batch, label snapshot, review queue."""


import json
from typing import Any

import dagster as dg

from aesthetic_platform.assets.data_engine import candidate_images, prompts
from aesthetic_platform.assets.metadata import code_version_of, table_metadata
from aesthetic_platform.assets.partitions import BATCH_BACKFILL_POLICY, observe_partition, prompt_batch, run_totals
from aesthetic_platform.embeddings import db
from aesthetic_platform.embeddings.classifier import ClassifierJobSettings, ClassifierSettings, labelled_vectors, train_classifier
from aesthetic_platform.embeddings.config import ImageEmbeddingSettings, PromptEmbeddingSettings
from aesthetic_platform.embeddings.embedders import embedder_from_settings, image_item, text_item
from aesthetic_platform.embeddings.flow import EmbedReport, embed_missing
from aesthetic_platform.embeddings.snapshot import read_snapshot, review_queue_of, take_snapshot, write_review_queue, write_snapshot
from aesthetic_platform.generation.candidates import load_manifest
from aesthetic_platform.prompts import load_prompts
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.embeddings import EmbeddingStoreResource
from aesthetic_platform.resources.tracking import MLflowResource
from aesthetic_platform.schemas import LABEL_REVIEW_QUEUE, LABEL_SNAPSHOT

GROUP = "embeddings"
EMBED_CODE = code_version_of(
    "aesthetic_platform.embeddings.embedders", "aesthetic_platform.embeddings.flow", "aesthetic_platform.embeddings.store",
    "aesthetic_platform.embeddings.config",
)
LABEL_CODE = code_version_of("aesthetic_platform.embeddings.snapshot", "aesthetic_platform.embeddings.labels")
CLASSIFIER_CODE = code_version_of("aesthetic_platform.embeddings.classifier", "aesthetic_platform.embeddings.labels")


def store_schema() -> dg.TableSchema:
    """The rows an embedding asset owns: the store's ``embeddings`` table (one vector per model and item hash)."""
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, str(c.type), constraints=dg.TableColumnConstraints(nullable=bool(c.nullable)))
        for c in db.embeddings.columns
    ])


class ImageEmbeddingsConfig(dg.Config, ImageEmbeddingSettings):
    """The launchpad form of ``ImageEmbeddingSettings`` (same fields, same defaults)."""


class PromptEmbeddingsConfig(dg.Config, PromptEmbeddingSettings):
    """The launchpad form of ``PromptEmbeddingSettings`` (same fields, same defaults)."""


def _complete_check(name: str, asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(name, asset=asset, description="Every item of the batch has a vector (failed items are listed).")


def _finish(context: dg.AssetExecutionContext, check: str, reports: dict[str, EmbedReport], store_url: str, fail: bool):
    failed = {sha: why for r in reports.values() for sha, why in r.failed.items()}
    if failed and fail:
        shown = dg.MetadataValue.json(dict(list(failed.items())[:50]))
        raise dg.Failure(f"{len(failed)} items could not be embedded (nothing stored for them)", metadata={"failed": shown})
    first = next(iter(reports.values()))
    # a batch's rows: the vectors its distinct items have in the store (items that failed have none)
    rows = {batch: r.unique - len(r.failed) for batch, r in reports.items()}
    for batch, r in reports.items():
        observe_partition(context, batch, {**r.as_metadata(), "rows": rows[batch]})
        if warning := r.truncation_warning():
            context.log.warning(f"batch {batch}: {warning}")
    return dg.MaterializeResult(
        metadata={
            **run_totals(context, {"rows": sum(rows.values())}),
            "dagster/column_schema": store_schema(),
            "model_id": first.model_id,
            "store": store_url,
            "items": sum(r.unique for r in reports.values()),
            "reused": sum(r.reused for r in reports.values()),
            "embedded": sum(r.embedded for r in reports.values()),
            "failed": len(failed),
            "truncated": sum(len(r.truncated) for r in reports.values()),
            "embedder_calls": sum(r.calls for r in reports.values()),
            "per_batch": dg.MetadataValue.json({batch: r.as_metadata() for batch, r in reports.items()}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=check, passed=not failed, severity=dg.AssetCheckSeverity.WARN,
                metadata={"failed": dg.MetadataValue.json(dict(list(failed.items())[:50]))},
            )
        ],
    )


@dg.asset(
    code_version=EMBED_CODE,
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[candidate_images],
    pool="gpu",
    kinds={"pytorch", "sql"},
    check_specs=[_complete_check("image_embeddings_complete", "image_embeddings")],
)
def image_embeddings(
    context: dg.AssetExecutionContext, config: ImageEmbeddingsConfig, data_root: DataRootResource, embedding_store: EmbeddingStoreResource
) -> dg.MaterializeResult:
    """A vector per candidate image in the shared store, keyed by (model, image sha256); cached vectors are reused."""
    root = data_root.root()
    with embedding_store.open(root) as store:
        embedder = embedder_from_settings(config, root, store)
        reports = {}
        for batch in context.partition_keys:
            items = [image_item(row.path, row.sha256, batch=batch, image_id=row.image_id, prompt_id=row.prompt_id)
                     for row in load_manifest(root, batch)]
            reports[batch] = embed_missing(store, embedder, items, batch_size=config.batch_size)
            context.log.info(f"batch {batch}: {reports[batch].as_metadata()}")
        return _finish(context, "image_embeddings_complete", reports, store.url, config.fail_on_errors)


@dg.asset(
    code_version=EMBED_CODE,
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[prompts],
    kinds={"pytorch", "sql"},
    check_specs=[_complete_check("prompt_embeddings_complete", "prompt_embeddings")],
)
def prompt_embeddings(
    context: dg.AssetExecutionContext, config: PromptEmbeddingsConfig, data_root: DataRootResource, embedding_store: EmbeddingStoreResource
) -> dg.MaterializeResult:
    """A vector per prompt text in the shared store, keyed by (model, text sha256); cached vectors are reused."""
    root = data_root.root()
    with embedding_store.open(root) as store:
        embedder = embedder_from_settings(config, root, store)
        reports = {}
        for batch in context.partition_keys:
            specs = load_prompts(root, batch)
            items = [text_item(spec.text, batch=batch, prompt_id=spec.prompt_id, language=spec.language) for spec in specs]
            reports[batch] = embed_missing(store, embedder, items, batch_size=config.batch_size)
            context.log.info(f"batch {batch}: {reports[batch].as_metadata()}")
        return _finish(context, "prompt_embeddings_complete", reports, store.url, config.fail_on_errors)


def _preview(rows, limit: int = 20) -> str:
    lines = ["| task | item | votes | consensus | content |", "| --- | --- | --- | --- | --- |"]
    for r in rows[:limit]:
        content = (r.path or r.text or "").replace("|", "/")[:60]
        votes = ", ".join(f"{k}: {v}" for k, v in json.loads(r.votes_json).items())
        lines.append(f"| {r.task} | {r.item[:12]} | {votes} | {r.consensus or '(tie)'} | {content} |")
    return "\n".join(lines)


@dg.asset(group_name=GROUP, kinds={"sql", "parquet"}, code_version=LABEL_CODE)
def label_snapshot(context: dg.AssetExecutionContext, data_root: DataRootResource, embedding_store: EmbeddingStoreResource):
    """Effective labels (latest per item, task, annotator) and consensus per item, with agreement statistics per task."""
    root = data_root.root()
    with embedding_store.open(root) as store:
        snapshot = take_snapshot(store)
    path = write_snapshot(root, snapshot)
    agreement = {
        task: {
            "krippendorff_alpha": s.alpha, "items": s.items, "annotators": s.annotators, "disputed": s.disputed,
            "per_annotator_agreement": {who: v["agreement"] if v["compared"] else None for who, v in s.per_annotator.items()},
        }
        for task, s in snapshot.stats.items()
    }
    metadata: dict[str, Any] = {
        "labelled_items": len(snapshot.rows),
        "tasks": sorted(snapshot.stats),
        "disputed": len(snapshot.queue),
        "agreement": dg.MetadataValue.json(agreement),
        **table_metadata(LABEL_SNAPSHOT, len(snapshot.rows), path, root),
    }
    for task, s in snapshot.stats.items():
        if s.alpha is not None:
            metadata[f"krippendorff_alpha.{task}"] = dg.MetadataValue.float(s.alpha)
    context.log.info(f"{len(snapshot.rows)} labelled items over {len(snapshot.stats)} tasks, {len(snapshot.queue)} disputed")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(group_name=GROUP, deps=[label_snapshot], kinds={"parquet"}, code_version=LABEL_CODE)
def label_review_queue(data_root: DataRootResource) -> dg.MaterializeResult:
    """Disputed items of the label snapshot per task, ties first, then lowest agreement: what a reviewer looks at first."""
    root = data_root.root()
    rows = review_queue_of(read_snapshot(root))
    path = write_review_queue(root, rows)
    per_task: dict[str, int] = {}
    for r in rows:
        per_task[r.task] = per_task.get(r.task, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "items": len(rows), "per_task": dg.MetadataValue.json(per_task),
            "preview": dg.MetadataValue.md(_preview(rows)), **table_metadata(LABEL_REVIEW_QUEUE, len(rows), path, root),
        }
    )


class EmbeddingClassifierConfig(dg.Config, ClassifierJobSettings):
    """The launchpad form of ``ClassifierJobSettings`` (same fields, same defaults)."""


@dg.asset(group_name=GROUP, deps=[label_snapshot], kinds={"pytorch", "mlflow"}, code_version=CLASSIFIER_CODE)
def embedding_classifier(
    context: dg.AssetExecutionContext,
    config: EmbeddingClassifierConfig,
    data_root: DataRootResource,
    embedding_store: EmbeddingStoreResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    """A classifier of one label task on cached embeddings, tracked in MLflow and registered as
    embedding-classifier-<task> (after MLflowResource.name_prefix)."""
    from aesthetic_platform.tracking.classifiers import EXPERIMENT, log_classifier

    root = data_root.root()
    settings = ClassifierSettings.model_validate(config.model_dump(include=set(ClassifierSettings.model_fields)))
    with embedding_store.open(root) as store:
        data = labelled_vectors(store, settings.task, settings.embedding_model, settings.min_agreement)
    context.log.info(f"{len(data.hashes)} labelled items of {settings.task!r} with {data.model_id} vectors")
    result = train_classifier(data, settings, on_epoch=lambda e, m: context.log.debug(f"epoch {e}: {m}"))
    tracking = mlflow_tracking.config_for(root).in_experiment(EXPERIMENT)
    logged = log_classifier(result, tracking, tags={"dagster.run_id": context.run_id}, parent_run_id=config.mlflow_parent_run_id)
    return dg.MaterializeResult(
        metadata={
            "task": settings.task,
            "embedding_model": data.model_id,
            "classes": result.classes,
            "positive": result.positive or "",
            "items": dg.MetadataValue.json(result.split_sizes),
            "best_epoch": result.best_epoch,
            **{f"test_{k}": dg.MetadataValue.float(v) for k, v in result.test.items()},
            "mlflow_run_id": logged["run_id"],
            "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(logged["experiment_id"], logged["run_id"])),
            "registered_model": f"{logged['registered_model']} v{logged['version']}",
        }
    )
