"""Content audit between candidate images and judging: prompts and images screened per batch."""

from collections import Counter

import dagster as dg

from aesthetic_platform.assets.data_engine import GROUP, candidate_images
from aesthetic_platform.assets.metadata import column_schema
from aesthetic_platform.assets.partitions import BATCH_BACKFILL_POLICY, prompt_batch, run_totals
from aesthetic_platform.audit import AuditConfig, audit_batch, check_flagged_share, earlier_shares, flagged_share, load_image_classifier
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.moderation import ModerationResource
from aesthetic_platform.schemas import CONTENT_AUDIT

MAX_LISTED = 20


class ContentAuditConfig(dg.Config, AuditConfig):
    """``AuditConfig`` on the launchpad (same fields, same defaults)."""


@dg.asset(
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[candidate_images],
    kinds={"openai", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "content_audit_flagged_share", asset="content_audit", blocking=True,
            description="The flagged share of prompts and images stays under max_flagged_share and does not jump more than "
            "max_flagged_jump above the mean of earlier batches (a broken term list, a drifting endpoint or a poisoned prompt source).",
        ),
    ],
)
def content_audit(
    context: dg.AssetExecutionContext, config: ContentAuditConfig, data_root: DataRootResource, moderation: ModerationResource
) -> dg.MaterializeResult:
    """Each prompt and candidate image: passed, flagged (categories, reason) or unaudited (the error); judging leaves out what is
    flagged, and what is unaudited under unaudited_policy='skip'."""
    root = data_root.root()
    settings = AuditConfig.model_validate(config.model_dump())
    if moderation.enabled:
        settings = settings.model_copy(update={"moderation": True})
    client = moderation.client(settings.score_thresholds) if settings.moderation or settings.moderate_images else None
    classifier = load_image_classifier(settings.image_classifier)
    earlier = earlier_shares(root, list(context.partition_keys))
    runs = []
    for batch in context.partition_keys:
        run = audit_batch(root, batch, settings, client, classifier)
        runs.append(run)
        context.log.info(
            f"batch {batch}: {run.count('flagged')} flagged, {run.count('unaudited')} unaudited of {len(run.rows)} items; "
            f"{run.moderation_calls} moderation calls, {run.reused} reused -> {run.path}"
        )
    rows = [r for run in runs for r in run.rows]
    check = check_flagged_share(flagged_share(rows), earlier, settings)
    flagged = [r for r in rows if r.status == "flagged"]
    unaudited = [r for r in rows if r.status == "unaudited"]
    return dg.MaterializeResult(
        metadata={
            "items": len(rows),
            "flagged": len(flagged),
            "unaudited": len(unaudited),
            "flagged_share": check.share,
            "categories": dict(Counter(c for r in flagged for c in r.categories)),
            "flagged_items": [f"{r.kind} {r.item_id}: {r.reason[:160]}" for r in flagged[:MAX_LISTED]],
            "unaudited_items": [f"{r.kind} {r.item_id}: {r.error[:160]}" for r in unaudited[:MAX_LISTED]],
            "unaudited_policy": settings.unaudited_policy,
            "auditors": sorted({r.auditor for r in rows}),
            "moderation_calls": sum(run.moderation_calls for run in runs),
            "reused": sum(run.reused for run in runs),
            "table": dg.MetadataValue.path(str(root.tables / "content_audit")),
            "dagster/column_schema": column_schema(CONTENT_AUDIT),
            **run_totals(context, {"rows": len(rows)}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="content_audit_flagged_share", passed=check.passed,
                metadata={
                    "flagged_share": check.share, "max_flagged_share": settings.max_flagged_share,
                    "earlier_batches_share": check.baseline if check.baseline is not None else -1.0, "jump": check.jump,
                    "max_flagged_jump": settings.max_flagged_jump,
                },
            )
        ],
    )
