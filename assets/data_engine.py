"""Data engine, first half: prompt batches and candidate images (seed 000 Phase 1.2)."""


from collections import Counter

import dagster as dg

from aesthetic_platform.assets.metadata import code_version_of, column_schema, root_path
from aesthetic_platform.assets.partitions import BATCH_BACKFILL_POLICY, observe_partition, prompt_batch, run_totals
from aesthetic_platform.assets.progress import batch_progress
from aesthetic_platform.generation import CandidateConfig, generate_candidates
from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch, load_prompts, write_prompts
from aesthetic_platform.resources import DataRootResource, ImageGeneratorResource, PromptLLMResource
from aesthetic_platform.schemas import CANDIDATE_IMAGES, PROMPTS

GROUP = "data_engine"


class PromptsConfig(dg.Config, PromptBatchConfig):
    """The launchpad form of ``PromptBatchConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.prompts"),
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("prompts_non_empty", asset="prompts", description="Every batch holds at least one prompt."),
        dg.AssetCheckSpec("prompts_unique_ids", asset="prompts", description="prompt_id is unique within each batch."),
        dg.AssetCheckSpec("prompts_no_duplicate_text", asset="prompts", description="No two prompts share a normalized-text hash."),
    ],
)
def prompts(
    context: dg.AssetExecutionContext, config: PromptsConfig, data_root: DataRootResource, prompt_llm: PromptLLMResource
) -> dg.MaterializeResult:
    """Prompt specs (text, language, objective elements) for each batch, deduplicated."""
    root = data_root.root()
    llm = prompt_llm.source() if config.source == "llm" else None
    languages: Counter[str]
    sizes, ids_ok, text_ok, languages = {}, True, True, Counter()
    for batch in context.partition_keys:
        specs = build_prompt_batch(batch, config, llm)
        path = write_prompts(root, batch, specs)
        sizes[batch] = len(specs)
        ids_ok &= len({s.prompt_id for s in specs}) == len(specs)
        text_ok &= len({s.text_hash for s in specs}) == len(specs)
        languages.update(s.language for s in specs)
        context.log.info(f"batch {batch}: {len(specs)} prompts -> {path}")
        languages_here = dict(Counter(s.language for s in specs))
        observe_partition(context, batch, {"prompts": len(specs), "rows": len(specs), "languages": languages_here})
    return dg.MaterializeResult(
        metadata={
            **run_totals(context, {"prompts": sum(sizes.values()), "rows": sum(sizes.values()), "languages": dict(languages)}),
            "dagster/column_schema": column_schema(PROMPTS),
            "source": config.source,
            "table": root_path(root, root.tables / "prompts"),
        },
        check_results=[
            dg.AssetCheckResult(check_name="prompts_non_empty", passed=all(sizes.values()), metadata={"per_batch": sizes}),
            dg.AssetCheckResult(check_name="prompts_unique_ids", passed=ids_ok),
            dg.AssetCheckResult(check_name="prompts_no_duplicate_text", passed=text_ok),
        ],
    )


class CandidateImagesConfig(dg.Config, CandidateConfig):
    """The launchpad form of ``CandidateConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of("aesthetic_platform.generation"),
    partitions_def=prompt_batch,
    backfill_policy=BATCH_BACKFILL_POLICY,
    group_name=GROUP,
    deps=[prompts],
    pool="gpu",
    kinds={"png", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("candidates_cover_ratios", asset="candidate_images", description="Every configured ratio appears in the run."),
    ],
)
def candidate_images(
    context: dg.AssetExecutionContext,
    config: CandidateImagesConfig,
    data_root: DataRootResource,
    image_generator: ImageGeneratorResource,
) -> dg.MaterializeResult:
    """K images per prompt over the aspect ratios, as PNGs plus a manifest table per batch."""
    root = data_root.root()
    generator = image_generator.build()
    generated = reused = 0
    ratios: Counter[str] = Counter()
    for batch in context.partition_keys:

        progress = batch_progress(context.log.info, batch, "images")
        run = generate_candidates(root, batch, load_prompts(root, batch), config, generator, progress=progress)
        generated += run.generated
        reused += run.reused
        ratios.update(row.ratio for row in run.rows)
        context.log.info(f"batch {batch}: {run.generated} generated, {run.reused} reused")
        observe_partition(context, batch, {
            "images": len(run.rows), "rows": len(run.rows), "generated": run.generated, "reused": run.reused,
            "ratios": dict(Counter(row.ratio for row in run.rows)),
        })
    expected = set(config.ratios)
    total = generated + reused
    slots = total // config.per_prompt  # (prompt, ratio) slots; 'balanced' covers every ratio once there are enough
    covered = expected <= set(ratios) or slots < len(expected)
    return dg.MaterializeResult(
        metadata={
            **run_totals(context, {"images": total, "rows": total, "generated": generated, "reused": reused, "ratios": dict(ratios)}),
            "dagster/column_schema": column_schema(CANDIDATE_IMAGES),
            "generator": generator.name,
            "images_dir": root_path(root, root.images),
            "manifest": root_path(root, root.tables / "candidate_images"),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name="candidates_cover_ratios", passed=covered,
                metadata={"missing": sorted(expected - set(ratios))},
            )
        ],
    )
