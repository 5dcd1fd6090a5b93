"""``aesthetic lora ...``: build a LoRA training set from a ZIP or folder of photos, or serve the web builder.

``build`` runs locally and sends nothing anywhere unless ``--caption-base-url`` names a
caption endpoint; then only the downscaled crops and the caption prompt go to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table as RichTable

from aesthetic_platform.paths import DataRoot

if TYPE_CHECKING:  # the pipeline pulls in polars, Pillow and the caption client: loaded by the commands, not by ``aesthetic``
    from aesthetic_platform.lora.config import LoraConfig
    from aesthetic_platform.lora.pipeline import BuildResult

lora_app = typer.Typer(help="LoRA portrait dataset builder: photos -> dedup -> 1024 crops -> captions -> kohya ZIP.", no_args_is_help=True)
console = Console()

SERVE_PORT = 8770


def _load_config(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"{path}: not a readable JSON file ({exc})", param_hint="--config") from None
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: expected a JSON object with ingest/dedup/crop/caption/package sections", param_hint="--config")
    return data


def compose_config(
    base: dict[str, Any], trigger: str | None, class_word: str | None, repeats: int | None, caption_base_url: str | None,
    caption_models: list[str] | None, caption_prompt: str | None, caption_api_key_env: str | None, crop_size: int | None,
    min_source_side: int | None,
) -> LoraConfig:
    """The config file's sections with the command-line flags on top (a flag wins); one trigger for captions and folder."""
    from aesthetic_platform.lora.config import CropConfig, LoraConfig

    sections: dict[str, dict[str, Any]] = {k: dict(base.get(k) or {}) for k in ("ingest", "dedup", "crop", "caption", "package")}
    unknown = sorted(set(base) - set(sections))
    if unknown:
        raise typer.BadParameter(f"unknown config sections {unknown}; use ingest, dedup, crop, caption, package", param_hint="--config")
    if trigger is not None:
        sections["caption"]["trigger"] = sections["package"]["trigger"] = trigger
    elif "trigger" in sections["package"] and "trigger" not in sections["caption"]:
        sections["caption"]["trigger"] = sections["package"]["trigger"]
    elif "trigger" in sections["caption"] and "trigger" not in sections["package"]:
        sections["package"]["trigger"] = sections["caption"]["trigger"]
    for section, key, value in (
        ("package", "class_word", class_word), ("package", "repeats", repeats), ("caption", "base_url", caption_base_url),
        ("caption", "models", caption_models or None), ("caption", "prompt", caption_prompt),
        ("caption", "api_key_env", caption_api_key_env), ("crop", "output_size", crop_size), ("crop", "min_source_side", min_source_side),
    ):
        if value is not None:
            sections[section][key] = value
    if crop_size is not None and min_source_side is None and "min_source_side" not in sections["crop"]:
        sections["crop"]["min_source_side"] = min(CropConfig().min_source_side, crop_size)
    try:
        return LoraConfig.model_validate(sections)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


class StageBars:
    """One Rich progress bar per stage, fed by the pipeline's progress callback."""

    def __init__(self, progress: Progress) -> None:
        from aesthetic_platform.lora.pipeline import STAGES

        self.progress = progress
        self.tasks: dict[str, TaskID] = {stage: progress.add_task(f"{stage:<8} waiting", total=None) for stage in STAGES}

    def __call__(self, stage: str, done: int, total: int, message: str) -> None:
        task = self.tasks[stage]
        if message in ("done", "up to date"):
            finished = self.progress.tasks[task].total or 1
            self.progress.update(task, total=finished, completed=finished, description=f"{stage:<8} {message}")
            return
        self.progress.update(task, total=total or None, completed=done, description=f"{stage:<8} {message[:60]}")


def summary_tables(result: BuildResult) -> list[RichTable]:
    """What was kept and dropped (per category, with the commonest reasons) and what the dataset holds."""
    import polars as pl

    from aesthetic_platform.lora.tables import MANIFEST_RECORDS

    manifest = MANIFEST_RECORDS.read(result.manifest)
    images = RichTable(title="images")
    images.add_column("outcome", no_wrap=True)
    images.add_column("images", justify="right")
    images.add_column("commonest reason", overflow="fold")
    grouped = manifest.group_by("category").agg(pl.len().alias("n"), pl.col("reason").mode().first().alias("reason")).sort("category")
    for row in grouped.iter_rows(named=True):
        images.add_row(row["category"], str(row["n"]), "" if row["category"] == "kept" else (row["reason"] or "")[:300])
    crops = result.outcomes["crops"].summary
    captions = result.outcomes["captions"].summary
    dataset = RichTable(title="dataset", show_header=False)
    dataset.add_column(no_wrap=True)
    dataset.add_column(overflow="fold")  # paths are shown whole, wrapped rather than cut
    dataset.add_row("crops", f"{crops.get('cropped', 0)} cropped, {crops.get('refused', 0)} refused, {crops.get('manual', 0)} manual")
    dataset.add_row("focus", ", ".join(f"{k}: {v}" for k, v in crops.get("focus", {}).items()) or "-")
    dataset.add_row("captions", ", ".join(f"{k}: {v}" for k, v in captions.get("by_source", {}).items()) or "-")
    dataset.add_row("caption models", ", ".join(f"{k}: {v}" for k, v in captions.get("by_model", {}).items()) or "-")
    if captions.get("vlm_failures"):
        dataset.add_row("caption fallbacks", f"{captions['vlm_failures']} images got offline tags (every model failed)")
    dataset.add_row("folder", str(result.image_dir))
    dataset.add_row("manifest", str(result.manifest))
    return [images, dataset]


@lora_app.command("build")
def build_command(
    input_path: Annotated[Path, typer.Option("--input", exists=True, help="A ZIP archive or a folder of photos.")],
    output: Annotated[Path, typer.Option("--output", help="Work folder: stage tables, crops, dataset/ and the ZIP.")],
    trigger: Annotated[str | None, typer.Option(help="Trigger word (captions and folder name); default ohwx.")] = None,
    class_word: Annotated[str | None, typer.Option("--class-word", help="Class word of the kohya folder; default person.")] = None,
    repeats: Annotated[int | None, typer.Option(help="Kohya repeats (folder prefix); default 10.")] = None,
    caption_base_url: Annotated[
        str | None, typer.Option("--caption-base-url", help="OpenAI-compatible VLM endpoint; without it captions are offline tags.")
    ] = None,
    caption_model: Annotated[
        list[str] | None, typer.Option("--caption-model", help="Caption model; repeat for a priority list (next one on failure).")
    ] = None,
    caption_prompt: Annotated[str | None, typer.Option("--caption-prompt", help="Instruction sent with each crop.")] = None,
    caption_api_key_env: Annotated[
        str | None, typer.Option("--caption-api-key-env", help="Environment variable holding the endpoint's key.")
    ] = None,
    crop_size: Annotated[int | None, typer.Option("--crop-size", help="Side of the square crops; default 1024.")] = None,
    min_source_side: Annotated[
        int | None, typer.Option("--min-source-side", help="Refuse crops smaller than this in source pixels (no big upscales).")
    ] = None,
    config_file: Annotated[
        Path | None, typer.Option("--config", exists=True, dir_okay=False, help="JSON with ingest/dedup/crop/caption/package sections.")
    ] = None,
) -> None:
    """Build the dataset: ingest -> dedup -> crops -> captions -> package (stages already up to date are skipped)."""
    from aesthetic_platform.lora.pipeline import build

    config = compose_config(_load_config(config_file), trigger, class_word, repeats, caption_base_url, caption_model, caption_prompt,
                            caption_api_key_env, crop_size, min_source_side)
    if config.caption.base_url:
        console.print(f"[yellow]captions: downscaled crops ({config.caption.max_side} px) go to {config.caption.base_url}[/yellow]")
    else:
        console.print("captions: offline tags (nothing leaves this machine)")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console) as progress:
            result = build(input_path, output, config, StageBars(progress))
    except ValueError as exc:  # refused archives, bad crop boxes, stage order: the message says what is wrong
        console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(2) from None
    for table in summary_tables(result):
        console.print(table)
    console.print(f"zip: {result.zip_path}", soft_wrap=True)  # one unbroken line, easy to copy
    if not result.outcomes["package"].summary.get("kept"):
        console.print("[yellow]no image made it into the dataset: see the reasons above (e.g. --min-source-side for small photos)[/yellow]")


@lora_app.command("crop")
def crop_command(
    output: Annotated[Path, typer.Option("--output", exists=True, file_okay=False, help="Work folder of an earlier build.")],
    image_id: Annotated[str, typer.Argument(help="Image id (manifest.parquet, image_id column).")],
    box: Annotated[tuple[int, int, int, int], typer.Argument(help="Square crop box LEFT TOP RIGHT BOTTOM in stored-image pixels.")],
) -> None:
    """Set a manual crop box for one image, then recompute crops, captions and package (only that image is recaptioned)."""
    from aesthetic_platform.lora.pipeline import run_stages, set_crop_box

    try:
        set_crop_box(output, image_id, list(box))
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console) as progress:
            outcomes = run_stages(output, ("crops", "captions", "package"), progress=StageBars(progress))
    except ValueError as exc:
        console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(2) from None
    captions = outcomes["captions"].summary
    console.print(f"{image_id}: crop {list(box)}; captions recomputed {captions['captioned']}, reused {captions['reused']}")
    console.print(f"zip: {outcomes['package'].summary['zip']}", soft_wrap=True)


@lora_app.command("serve")
def serve(
    home: Annotated[Path | None, typer.Option("--home", help="Data root (default: $AESTHETIC_HOME or ./.aesthetic).")] = None,
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = SERVE_PORT,
    max_upload_mb: Annotated[int, typer.Option("--max-upload-mb", help="Largest accepted upload.")] = 2048,
) -> None:
    """The web builder: upload a ZIP, watch the stages, adjust crops, download the dataset."""
    import uvicorn

    from aesthetic_platform.lora.app import create_app

    root = DataRoot.from_env(home).ensure()
    web = create_app(root, max_upload_bytes=max_upload_mb * 1024 * 1024)
    console.print(f"[green]LoRA builder:[/green] http://{host}:{port}/  (jobs under {root.lora}); Ctrl-C stops it")
    uvicorn.run(web, host=host, port=port, log_level="warning")
