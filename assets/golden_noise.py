"""Golden-seed workbench outputs (seed 001): the human test set and the golden-noise analysis."""


from pathlib import Path

import dagster as dg

from aesthetic_platform.assets.metadata import code_version_of, embedded_plots, root_path, table_metadata
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.schemas import HUMAN_PREFERENCES
from aesthetic_platform.workbench.noise import SelectorConfig, analyse_golden_noise
from aesthetic_platform.workbench.preferences import build_human_preferences

GROUP = "golden_noise"


@dg.asset(
    code_version=code_version_of("aesthetic_platform.workbench.preferences", "aesthetic_platform.workbench.selections"),
    group_name=GROUP,
    kinds={"polars", "parquet"},
    check_specs=[
        dg.AssetCheckSpec("human_pairs_have_annotator", asset="human_preferences", description="Every pair names who judged it."),
        dg.AssetCheckSpec("human_pairs_images_exist", asset="human_preferences", description="Every winner and loser PNG is on disk."),
    ],
)
def human_preferences(context: dg.AssetExecutionContext, data_root: DataRootResource) -> dg.MaterializeResult:
    """Independent human test pairs: every golden > bad image of a workbench submission, on `total`."""
    root = data_root.root()
    path, rows, selections = build_human_preferences(root)
    missing = sorted({p for r in rows for p in (r.winner_path, r.loser_path) if not Path(p).exists()})
    annotators = sorted({r.annotator for r in rows})
    context.log.info(f"{len(rows)} human pairs from {len(selections)} submissions -> {path}")
    return dg.MaterializeResult(
        metadata={
            "pairs": len(rows),
            "submissions": len(selections),
            "prompts": len({s.prompt_id for s in selections}),
            "annotators": ", ".join(annotators) or "-",
            **table_metadata(HUMAN_PREFERENCES, len(rows), path, root),
        },
        check_results=[
            dg.AssetCheckResult(check_name="human_pairs_have_annotator", passed=all(r.annotator for r in rows)),
            dg.AssetCheckResult(check_name="human_pairs_images_exist", passed=not missing, metadata={"missing": missing[:20]}),
        ],
    )


class GoldenNoiseConfig(dg.Config, SelectorConfig):
    """The launchpad form of ``SelectorConfig`` (same fields, same defaults)."""


@dg.asset(
    code_version=code_version_of(
        "aesthetic_platform.workbench.noise", "aesthetic_platform.workbench.selections", "aesthetic_platform.stats"
    ),
    group_name=GROUP, deps=[human_preferences], kinds={"python", "png"},
)
def golden_noise_analysis(
    context: dg.AssetExecutionContext, config: GoldenNoiseConfig, data_root: DataRootResource
) -> dg.MaterializeResult:
    """Golden vs bad seeds through their regenerated initial latent noise: statistics, t-SNE, seed-selector AUC."""
    root = data_root.root()
    report = analyse_golden_noise(root, config)
    selector = report["seed_selector"]
    context.log.info(selector.get("interpretation") or f"seed selector: {selector['status']}")
    metadata: dict = {
        "samples": report["samples"],
        "golden": report["golden"],
        "bad": report["bad"],
        "prompts": report["prompts"],
        "verdict": selector["verdict"],
        "report": root_path(root, report["report_path"]),
        "summary": dg.MetadataValue.md(Path(report["markdown_path"]).read_text(encoding="utf-8")),
    }
    if selector["status"] == "evaluated":
        low, high = selector["auc_ci"]
        metadata.update({"auc": selector["auc"], "auc_ci_low": low, "auc_ci_high": high, "permutation_p": selector["permutation_p"]})
    if report["tsne"]["status"] == "plotted":
        metadata.update(embedded_plots({"tsne": Path(report["tsne"]["path"])}, root))
    return dg.MaterializeResult(metadata=metadata)
