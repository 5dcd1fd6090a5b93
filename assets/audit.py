"""Content audit between candidate images and judging: prompts and images screened per batch."""

from collections import Counter

import dagster as dg

from aesthetic_platform.assets.data_engine import GROUP, candidate_images
from aesthetic_platform.assets.metadata import code_version_of, column_schema, root_path
from aesthetic_platform.assets.partitions import BATCH_BACKFILL_POLICY, observe_partition, prompt_batch, run_totals
from aesthetic_platform.audit import (
    AuditConfig,
    ImageSafetyClassifier,
    ShareCheck,
    audit_batch,
    check_flagged_share,
    earlier_shares,
    flagged_share,
    load_image_classifier,
)
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, MLflowResource
from aesthetic_platform.resources.moderation import ModerationResource, moderation_for_profile
from aesthetic_platform.resources.profile import current_profile
from aesthetic_platform.schemas import CONTENT_AUDIT

MAX_LISTED = 20
#: The kind tag shows whether this deployment's profile sends content to the moderation endpoint
#: (``AESTHETIC_MODERATION`` included), not a guess.
AUDIT_KIND = moderation_for_profile(current_profile()).kind


class ContentAuditConfig(dg.Config, AuditConfig):
    """``AuditConfig`` on the launchpad (same fields, same defaults)."""


def image_screen(root: DataRoot, settings: AuditConfig, tracking: MLflowResource) -> ImageSafetyClassifier | None:
    """The named factory's classifier, else the registered classifier of ``image_safety_task`` in this deployment's
    tracking store and under its name prefix, else None (images pass)."""
    if settings.image_classifier:
        return load_image_classifier(settings.image_classifier)
    from aesthetic_platform.audit.prejudge import registered_safety_filter  # deferred: loads the embedding stack

    return registered_safety_filter(
        root, settings.image_safety_task, settings.image_safety_reject, settings.image_safety_threshold,
        tracking.tracking_uri or None, name_prefix=tracking.name_prefix,
    )


def _worst(checks: dict[str, ShareCheck]) -> str:
    """The batch the check's headline numbers describe: the first failing one, else the highest share."""
    failing = [batch for batch, check in checks.items() if not check.passed]
    return failing[0] if failing else max(checks, key=lambda batch: checks[batch].share)


@dg.asset(
    code_version=code_version_of("aesthetic_platform.audit"),
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[candidate_images],
    kinds={AUDIT_KIND, "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "content_audit_flagged_share", asset="content_audit", blocking=True,
            description="In every batch, the flagged share of prompts and images stays under max_flagged_share and does not jump "
            "more than max_flagged_jump above the mean of earlier batches (a broken term list, a drifting endpoint or a poisoned "
            "prompt source).",
        ),
    ],
)
def content_audit(
    context: dg.AssetExecutionContext, config: ContentAuditConfig, data_root: DataRootResource, moderation: ModerationResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    """Each prompt and candidate image: passed, flagged (categories, reason) or unaudited (the error); judging leaves out what is
    flagged, and what is unaudited under unaudited_policy='skip'."""
    root = data_root.root()
    settings = AuditConfig.model_validate(config.model_dump())
    if moderation.enabled:
        settings = settings.model_copy(update={"moderation": True, "moderate_images": settings.moderate_images or moderation.images})
    client = moderation.client(settings.score_thresholds) if settings.moderation or settings.moderate_images else None
    classifier = image_screen(root, settings, mlflow_tracking)
    earlier = earlier_shares(root, list(context.partition_keys))
    runs, checks = [], {}
    for batch in context.partition_keys:
        run = audit_batch(root, batch, settings, client, classifier)
        runs.append(run)
        # each batch against the batches before it, this run's earlier ones included: a jump is never averaged away
        checks[batch] = check_flagged_share(run.flagged_share, earlier, settings)
        earlier.append(run.flagged_share)
        context.log.info(
            f"batch {batch}: {run.count('flagged')} flagged, {run.count('unaudited')} unaudited of {len(run.rows)} items "
            f"(share {run.flagged_share:.3f}); {run.moderation_calls} moderation calls, {run.reused} reused -> {run.path}"
        )
        observe_partition(context, batch, {
            "rows": len(run.rows), "flagged": run.count("flagged"), "unaudited": run.count("unaudited"),
            "flagged_share": run.flagged_share, "check_passed": checks[batch].passed,
        })
    rows = [r for run in runs for r in run.rows]
    worst = _worst(checks)
    check = checks[worst]
    flagged = [r for r in rows if r.status == "flagged"]
    unaudited = [r for r in rows if r.status == "unaudited"]
    return dg.MaterializeResult(
        metadata={
            "items": len(rows),
            "flagged": len(flagged),
            "unaudited": len(unaudited),
            "flagged_share": flagged_share(rows),
            "batch_flagged_shares": {batch: c.share for batch, c in checks.items()},
            "categories": dict(Counter(c for r in flagged for c in r.categories)),
            "flagged_items": [f"{r.kind} {r.item_id}: {r.reason[:160]}" for r in flagged[:MAX_LISTED]],
            "unaudited_items": [f"{r.kind} {r.item_id}: {r.error[:160]}" for r in unaudited[:MAX_LISTED]],
            "unaudited_policy": settings.unaudited_policy,
            "auditors": sorted({r.auditor for r in rows}),
            "image_screen": classifier.name if classifier is not None else "none",
            "moderation_calls": sum(run.moderation_calls for run in runs),
            "reused": sum(run.reused for run in runs),
            "table": root_path(root, root.tables / "content_audit"),
            "dagster/column_schema": column_schema(CONTENT_AUDIT),
            **run_totals(context, {"rows": len(rows)}),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="content_audit_flagged_share", passed=all(c.passed for c in checks.values()),
                metadata={
                    "batch": worst, "flagged_share": check.share, "max_flagged_share": settings.max_flagged_share,
                    "earlier_batches_share": check.baseline if check.baseline is not None else -1.0, "jump": check.jump,
                    "max_flagged_jump": settings.max_flagged_jump,
                    "batch_shares": {batch: c.share for batch, c in checks.items()},
                    "batch_jumps": {batch: c.jump for batch, c in checks.items()},
                    "failed_batches": [batch for batch, c in checks.items() if not c.passed],
                },
            )
        ],
    )
