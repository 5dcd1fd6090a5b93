"""The ``aesthetic`` commands that run pipeline steps through Dagster (orchestration layer).

They extend the core command line (:mod:`aesthetic_platform.cli`) and go through the
jobs of :mod:`aesthetic_platform.jobs.launch` (the code location's own), so a CLI run is a Dagster run:
it shows up in the UI with lineage, metadata and asset checks. The jobs are imported
inside each command so that ``aesthetic score`` and friends never pay for Dagster.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table as RichTable

from aesthetic_platform.cli import HomeOption, app, console, data_root_option, fail, quiet_libraries
from aesthetic_platform.paths import DataRoot, check_key

# The single-run backfill policy is a Dagster beta parameter: known and chosen, so the console need not say so six times.
warnings.filterwarnings("ignore", message=r"Parameter `backfill_policy` of function `asset` is currently in beta")

batch_app = typer.Typer(help="prompt_batch partitions.", no_args_is_help=True)
app.add_typer(batch_app, name="batch")


def _run_config(ops: dict[str, Any]) -> Any:
    """Typed run config (Dagster ``Config`` objects per asset). The console shows no Dagster log unless ``--debug``
    (then WARNING and up, tracebacks included): a failed step is reported in one line by ``_fail_on`` instead."""
    import dagster as dg

    from aesthetic_platform import cli as core_cli

    level = "WARNING" if core_cli._show_tracebacks else "CRITICAL"
    return dg.RunConfig(ops=ops, loggers={"console": {"config": {"log_level": level}}})


def _chain_config(prompts: dict[str, Any], candidates: dict[str, Any]) -> Any:
    """Only the settings given on the command line; every other field keeps its core default."""
    from aesthetic_platform.assets.data_engine import CandidateImagesConfig, PromptsConfig

    return _run_config({"prompts": PromptsConfig(**_given(prompts)), "candidate_images": CandidateImagesConfig(**_given(candidates))})


def _tracking_summary(root: DataRoot) -> str:
    """Where the runs went, as the profile's MLflow resource chose it ($MLFLOW_TRACKING_URI, $AESTHETIC_MLFLOW_PREFIX):
    the store (password hidden), the experiment and the registered model."""
    from aesthetic_platform.tracking.store import display_uri

    tracking = _tracking_for(root)
    return f"{display_uri(tracking.tracking_uri)} (experiment {tracking.experiment}, model {tracking.registered_model})"


def _tracking_for(root: DataRoot) -> Any:
    """The ``TrackingConfig`` the profile's MLflow resource gives this root (what the assets log into)."""
    from aesthetic_platform.resources import resources_for

    return resources_for()["mlflow_tracking"].config_for(root)


def _given(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _run_chain(root: DataRoot, batches: list[str], run_config: Any, job_name: str = "candidate_chain") -> None:
    from aesthetic_platform.jobs import launch

    for batch in batches:
        check_key("batch", batch)
    with console.status(f"materializing {', '.join(batches)} through Dagster ..."):
        results = launch.materialize_batches(root, batches, job_name=job_name, run_config=run_config)
    _fail_on(results)


def _fail_on(results: list[Any]) -> None:
    """One line per failed run naming the step and its error; ``--debug`` has Dagster's console log (with the
    traceback) above it, and the full log stays in the instance for the UI."""
    from aesthetic_platform.jobs.launch import failure_summary

    failed = [r for r in results if not r.success]
    for result in failed:
        line = f"run {result.run_id} failed: {failure_summary(result)} (full log: aesthetic ui)"
        console.print(line, style="red", soft_wrap=True, markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


def _summary(root: DataRoot, batches: list[str]) -> RichTable:
    from aesthetic_platform.generation import load_manifest
    from aesthetic_platform.prompts import load_prompts

    table = RichTable(title="prompt batches")
    for column in ("batch", "prompts", "images", "1:1", "3:4", "9:16", "4:3", "16:9"):
        table.add_column(column, justify="right" if column != "batch" else "left")
    for batch in batches:
        rows = load_manifest(root, batch)
        per_ratio = {r: sum(1 for x in rows if x.ratio == r) for r in ("1:1", "3:4", "9:16", "4:3", "16:9")}
        table.add_row(batch, str(len(load_prompts(root, batch))), str(len(rows)), *(str(v) for v in per_ratio.values()))
    return table


def demo_batches(first: str, count: int) -> list[str]:
    """``count`` partition keys counting up from ``first`` (demo-0001 -> demo-0002, ...)."""
    if count < 1:
        raise typer.BadParameter("--batches must be at least 1", param_hint="--batches")
    match = re.match(r"^(.*?)(\d+)$", first)
    if match is None:
        return [first] + [f"{first}-{i}" for i in range(2, count + 1)]
    stem, digits = match.groups()
    return [f"{stem}{int(digits) + i:0{len(digits)}d}" for i in range(count)]


DEMO_BATCHES = 14
DEMO_PROMPTS = 30  # per batch: 420 prompts, about a fifth held out for the test split (88)
DEMO_EPOCHS = 7  # about 2,500 train pairs x 7 epochs: about 80 s of training here, inside the demo's 3 minutes
DEMO_SEEDS = 3  # seeds per (prompt, ratio): best of 3
DEMO_RATIOS = 2  # ratios per prompt: each seed at both is a cross-ratio pair


def _pairs_summary(root: DataRoot) -> RichTable:
    import polars as pl

    from aesthetic_platform.schemas import RATIOS

    pairs = pl.read_parquet(root.table("preference_pairs"))
    table = RichTable(title="preference pairs (split by prompt hash; ratios: of the five, how many have same-ratio pairs)")
    for column in ("split", "pairs", "same-ratio", "cross-ratio", "ratios", "consistent", "prompts"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for split in ("train", "val", "test"):
        part = pairs.filter(pl.col("split") == split)
        same = part.filter(pl.col("pair_kind") == "same_ratio")
        table.add_row(
            split, str(part.height), str(same.height), str(part.height - same.height),
            f"{same['winner_ratio'].n_unique()}/{len(RATIOS)}", str(int(part["consistent"].sum()) if part.height else 0),
            str(part["prompt_hash"].n_unique()),
        )
    return table


@app.command()
def demo(
    home: HomeOption = None,
    batch: Annotated[str, typer.Option(help="First prompt_batch partition key to create.")] = "demo-0001",
    batches: Annotated[int, typer.Option(help="How many batches, counting up from --batch.")] = DEMO_BATCHES,
    prompts: Annotated[int, typer.Option(help="Prompts per batch.")] = DEMO_PROMPTS,
    per_prompt: Annotated[int, typer.Option(help="Candidate seeds per (prompt, ratio): the N of best-of-N.")] = DEMO_SEEDS,
    ratios_per_prompt: Annotated[int, typer.Option(help="Ratios each prompt is rendered at (each seed at each).")] = DEMO_RATIOS,
    pixel_budget: Annotated[int, typer.Option(help="Pixels per image (the tiny student sees about 128x128).")] = 128 * 128,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Also train the tiny student and write the eval report.")] = True,
    epochs: Annotated[int, typer.Option(help="Training epochs of the tiny student.")] = DEMO_EPOCHS,
) -> None:
    """Run the main chain end to end on embedded defaults (no GPU, keys or downloads):
    prompts -> candidate images -> judge verdicts -> preference pairs -> student model -> eval report."""
    from aesthetic_platform.jobs import launch

    quiet_libraries()
    root = data_root_option(home)
    keys = demo_batches(batch, batches)
    started = time.perf_counter()
    console.rule("aesthetic_platform demo")
    console.print(f"data root: [bold]{root.root}[/bold]  (DAGSTER_HOME={root.dagster_home})")
    candidates = {"per_prompt": per_prompt, "ratios_per_prompt": ratios_per_prompt, "pixel_budget": pixel_budget}
    chain = _chain_config({"source": "grammar", "count": prompts}, candidates)
    _run_chain(root, keys, chain, job_name="judging_chain")
    with console.status("building the preference-pair dataset and the judge calibration ..."):
        _fail_on([launch.materialize_job(root, "pair_dataset", run_config=_run_config(_demo_split()))])
    console.print(_summary(root, keys))
    console.print(_pairs_summary(root))
    if train:
        with console.status(f"training the tiny student ({epochs} epochs) and evaluating it ..."):
            result = launch.materialize_job(root, "train_and_evaluate", run_config=_demo_training_config(epochs))
        _fail_on([result])
        report = _eval_report_json(result, root)
        console.print(_eval_summary(report))
        console.print(_best_of_n_summary(report))
    console.print(f"prompts table:     {root.tables / 'prompts'}/<batch>.parquet")
    console.print(f"image manifest:    {root.tables / 'candidate_images'}/<batch>.parquet")
    console.print(f"images:            {root.images}/<batch>/<prompt_id>/<seed>_<w>x<h>.png")
    console.print(f"judge verdicts:    {root.tables / 'judgments'}/<batch>.parquet")
    console.print(f"judge calibration: {root.judge_calibration}")
    console.print(f"preference pairs:  [bold]{root.table('preference_pairs')}[/bold]")
    if train:
        console.print(f"champion model:    {root.champion}")
        console.print(f"eval reports:      {root.reports}/eval-*/report.md")
        console.print(f"MLflow store:      {_tracking_summary(root)}", soft_wrap=True)
    console.print(f"done in {time.perf_counter() - started:.1f}s")
    console.rule("next steps")
    console.print(f"browse runs, lineage and MLflow:  aesthetic ui --home {root.root}")
    console.print(
        f"read the pairs:                   python -c \"import polars as pl; print(pl.read_parquet('{root.table('preference_pairs')}'))\""
    )
    if train:
        console.print(f"score images:                     aesthetic score --home {root.root} --prompt '...' IMAGE.png")
    console.print("more batches (one backfill):      aesthetic materialize --batch b-0002 --batch b-0003")


def _demo_split() -> dict[str, Any]:
    """The demo holds out a fifth of its prompts so the headline CI is not drawn from a handful."""
    from aesthetic_platform.assets.judging import PreferencePairsConfig

    return {"preference_pairs": PreferencePairsConfig(train_fraction=0.7, val_fraction=0.1)}


def _demo_training_config(epochs: int) -> Any:
    """The tiny student trains from random init, so its towers learn as fast as its heads."""
    from aesthetic_platform.assets.training import AestheticModelConfig, OptimizerSettings

    model = AestheticModelConfig(model="tiny", epochs=epochs, batch_size=32, optimizer=OptimizerSettings(tower_lr=1e-3, head_lr=1e-3))
    return _run_config({**_demo_split(), "aesthetic_model": model})


def _eval_report_json(result: Any, root: DataRoot) -> dict[str, Any]:
    """The run's evaluation report; its folder is shown relative to the data root, so it is read against it."""
    import json as json_module

    (materialization,) = result.asset_materializations_for_node("eval_report")
    return json_module.loads((root.resolve(materialization.metadata["report_dir"].value) / "report.json").read_text())


def _eval_summary(report: dict[str, Any]) -> RichTable:
    table = RichTable(title=f"held-out teacher pairs: student accuracy [95% CI over prompts] (pairs); chance {report['chance']:.0%}")
    for column in ("dimension", "all pairs", "same-ratio", "pairs", "> 50%"):
        table.add_column(column, justify="left" if column == "dimension" else "right")
    same_ratio = report["model"].get("per_kind", {}).get("same_ratio", {})
    for dim in report["dimensions"]:
        acc = report["model"]["per_dimension"][dim]
        same = same_ratio.get(dim, {"accuracy": float("nan"), "ci_low": float("nan"), "ci_high": float("nan"), "n": 0})
        table.add_row(
            dim, _acc_cell(acc), _acc_cell(same), str(same["n"]), "yes" if same["n"] and same["ci_low"] > report["chance"] else "no",
        )
    reasons = report.get("at_chance", {})
    if reasons:
        table.caption = "\n".join(f"why {dim} is at chance: {reason}" for dim, reason in reasons.items())
        table.caption_justify = "left"
    return table


def _acc_cell(acc: dict[str, Any]) -> str:
    return f"{acc['accuracy']:.1%} [{acc['ci_low'] * 100:.1f}, {acc['ci_high'] * 100:.1f}]"


def _best_of_n_summary(report: dict[str, Any]) -> RichTable:
    best_of_n = report["model"].get("best_of_n", {})
    groups = best_of_n.get("total", {}).get("n", 0)
    table = RichTable(title=f"best of N: the student's top pick among a (prompt, ratio)'s N seeds is the judge's ({groups} groups)")
    for column in ("dimension", "student [95% CI]", "random", "lift (points)", "beats"):
        table.add_column(column, justify="left" if column == "dimension" else "right")
    for dim in report["dimensions"]:
        best = best_of_n.get(dim)
        if not best or not best["n"]:
            continue
        lift = (best["accuracy"] - best["chance"]) * 100
        table.add_row(
            dim, _acc_cell(best), f"{best['chance']:.1%}",
            f"{lift:+.1f} [{best['lift_ci_low'] * 100:+.1f}, {best['lift_ci_high'] * 100:+.1f}]", "yes" if best["beats_chance"] else "no",
        )
    return table


@app.command()
def materialize(
    batch: Annotated[list[str], typer.Option("--batch", "-b", help="prompt_batch key; repeat for several (one run per contiguous range).")],
    home: HomeOption = None,
    source: Annotated[str, typer.Option(help="Prompt source: grammar, llm or file.")] = "grammar",
    file: Annotated[Path | None, typer.Option(help="CSV/JSON prompt file for --source file.", exists=True, dir_okay=False)] = None,
    prompts: Annotated[int | None, typer.Option(help="Prompts per batch (grammar/llm) [default: the prompts asset's].")] = None,
    per_prompt: Annotated[int | None, typer.Option(help="Candidate seeds per (prompt, ratio) [default: the asset's].")] = None,
    ratios_per_prompt: Annotated[int | None, typer.Option(help="Ratios each prompt is rendered at [default: the asset's].")] = None,
    pixel_budget: Annotated[int | None, typer.Option(help="Pixels per image [default: the asset's].")] = None,
) -> None:
    """Create the batches (if new) and materialize prompts -> images -> judgments in one go (a backfill)."""
    if source == "file" and file is None:
        raise typer.BadParameter("--source file needs --file PATH", param_hint="--file")
    if source == "file" and file is not None:
        _check_prompt_file(file)
    root = data_root_option(home)
    prompt_settings = {"source": source, "count": prompts, "file_path": str(file.resolve()) if file else None}
    chain = _chain_config(prompt_settings, {"per_prompt": per_prompt, "ratios_per_prompt": ratios_per_prompt, "pixel_budget": pixel_budget})
    _run_chain(root, batch, chain, job_name="judging_chain")
    console.print(_summary(root, batch))


def _check_prompt_file(file: Path) -> None:
    """Read the file before any run starts: a bad one is one line naming file, line and field, and no run is created."""
    from aesthetic_platform.prompts.files import PromptFileError, read_prompt_file

    try:
        read_prompt_file(file)
    except PromptFileError as exc:
        raise fail(str(exc)) from None


@batch_app.command("add")
def batch_add(keys: Annotated[list[str], typer.Argument(help="Partition keys to add.")], home: HomeOption = None) -> None:
    """Register prompt_batch partitions without running anything (e.g. before a UI backfill)."""
    from aesthetic_platform.jobs import instance

    for key in keys:
        check_key("batch", key)
    root = data_root_option(home)
    added = instance.add_batches(instance.instance_for(root), keys)
    console.print(f"added {len(added)} new partition(s): {', '.join(added) or '-'}")


@batch_app.command("list")
def batch_list(home: HomeOption = None) -> None:
    """List prompt_batch partitions known to the instance."""
    from aesthetic_platform.jobs import instance

    for key in instance.list_batches(instance.instance_for(data_root_option(home))):
        console.print(key)



@app.command()
def ui(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Bind address for both UIs.")] = "127.0.0.1",
    dagster_port: Annotated[int, typer.Option(help="Dagster UI port.")] = 3000,
    mlflow_port: Annotated[int, typer.Option(help="MLflow UI port.")] = 5000,
) -> None:
    """Start the Dagster UI and the MLflow UI over the store runs are logged into (none when that is a tracking server,
    which has its own); Ctrl-C stops them."""
    from aesthetic_platform import ui as ui_module
    from aesthetic_platform.jobs.instance import REPO_ROOT, prepare_dagster_home

    root = data_root_option(home)
    prepare_dagster_home(root)
    tracking = _tracking_for(root)
    services = ui_module.build_services(root, REPO_ROOT, host, dagster_port, mlflow_port, tracking)
    console.print(f"starting {' and '.join(s.name for s in services)} for {root.root} (logs in {root.logs}); Ctrl-C stops them")
    if tracking.is_server:
        from aesthetic_platform.tracking.store import display_uri

        console.print(f"MLflow: runs go to the tracking server {display_uri(tracking.tracking_uri)}; its own UI shows them")
    try:
        code = ui_module.run_services(
            services, dict(os.environ), REPO_ROOT, root.logs,
            on_ready=lambda s: console.print(f"[green]{s.name} UI:[/green] {s.url}"),
        )
    except (RuntimeError, TimeoutError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"stopped {' and '.join(s.name for s in services)}")
    raise typer.Exit(code)


if __name__ == "__main__":  # pragma: no cover
    app()
