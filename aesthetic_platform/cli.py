"""The core of the ``aesthetic`` command line (Typer + Rich): commands that need no Dagster.

Scoring, serving, the workbench and prompt-file checks run on the core library alone.
The commands that run pipeline steps (``demo``, ``materialize``, ``batch``, ``ui``) are
added by :mod:`aesthetic_platform.jobs.cli`, the orchestration layer, which is what
the ``aesthetic`` console script starts.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table as RichTable

from aesthetic_platform.audit.cli import app as audit_app
from aesthetic_platform.characters.cli import characters_app
from aesthetic_platform.embeddings.cli import app as store_app
from aesthetic_platform.ingest.cli import app as crawl_app
from aesthetic_platform.lora.cli import lora_app
from aesthetic_platform.paths import DataRoot

app = typer.Typer(help="aesthetic_platform: prompts -> images -> judge -> student scorer.", no_args_is_help=True)
app.add_typer(store_app)  # aesthetic db …, aesthetic labels …, aesthetic similar
app.add_typer(crawl_app, name="crawl")  # aesthetic crawl add|list|run|status
app.add_typer(audit_app, name="audit")  # aesthetic audit prompts FILE
app.add_typer(lora_app, name="lora")  # aesthetic lora build|crop|serve
app.add_typer(characters_app, name="characters")  # aesthetic characters predict|add
console = Console()

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data root (default: $AESTHETIC_HOME or ./.aesthetic).", show_default=False)
]


class _DropExpectedNotices(logging.Filter):
    """The tiny demo model is random-init on purpose; OpenCLIP says so on every build."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


def quiet_libraries() -> None:
    """Keep the demo's console to what a user needs: progress, tables, paths."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("mlflow").setLevel(logging.ERROR)
    logging.getLogger().addFilter(_DropExpectedNotices())
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")


def data_root_option(home: Path | None) -> DataRoot:
    return DataRoot.from_env(home).ensure()


_show_tracebacks = False


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="On an error, also print the traceback.")] = False,
) -> None:
    global _show_tracebacks
    _show_tracebacks = debug


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one red line (no wrapping, no markup) and give the exit to raise; ``--debug`` adds the traceback."""
    if _show_tracebacks:
        console.print_exception()
    console.print(message, style="red", soft_wrap=True, markup=False, highlight=False)
    return typer.Exit(code)


@app.command("check-prompts")
def check_prompts(file: Annotated[Path, typer.Argument(help="CSV or JSON prompt file.")]) -> None:
    """Validate a prompt file and show what would be imported."""
    from aesthetic_platform.prompts import PromptFileError, dedupe
    from aesthetic_platform.prompts.files import read_prompt_file

    try:
        records = read_prompt_file(file)
    except PromptFileError as exc:
        raise fail(str(exc)) from None
    specs = dedupe(r.to_spec("check", "file") for r in records)
    console.print(f"{file}: {len(records)} records, {len(specs)} unique prompts")


def _load_scorer(home: Path | None, model: Path | None):
    from aesthetic_platform.registry import NoModelError, resolve_model
    from aesthetic_platform.scoring import Scorer

    try:
        path = resolve_model(data_root_option(home), model)
    except NoModelError as exc:
        raise fail(str(exc)) from None
    try:
        return path, Scorer.from_pretrained(path)
    except Exception as exc:  # noqa: BLE001 - a wrong or damaged model folder is bad input: one line, not a traceback
        raise fail(f"{path}: cannot load the model: {type(exc).__name__}: {exc}") from None


@app.command()
def score(
    images: Annotated[list[Path], typer.Argument(help="Image files (any size and ratio).")],
    prompt: Annotated[str, typer.Option("--prompt", "-p", help="The prompt the images were generated for.")],
    model: Annotated[Path | None, typer.Option(help="Saved model folder (default: the champion of the data root).")] = None,
    home: HomeOption = None,
    best_of: Annotated[bool, typer.Option("--best-of", help="Rank the images by total, best first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    skip_unreadable: Annotated[
        bool,
        typer.Option("--skip-unreadable", help="Score the images that can be read and list the others with why, instead of "
                     "stopping at the first (exit 0 unless none could be read)."),
    ] = False,
) -> None:
    """Score images with the student model: one relative score per dimension (larger is better)."""
    import json

    from aesthetic_platform.images import ImageInputError
    from aesthetic_platform.registry import promotion_record
    from aesthetic_platform.scoring import PromptError, ScoredImages
    from aesthetic_platform.serving import rank_best_of

    model_path, scorer = _load_scorer(home, model)
    names = [str(p) for p in images]
    try:
        with _scoring_progress(len(names), scorer.batch_size) as progress:
            if skip_unreadable:
                scored = scorer.score_readable(names, [prompt] * len(names), progress=progress)
            else:  # the first unreadable image stops the command
                scored = ScoredImages(dict(enumerate(scorer.score(names, [prompt] * len(names), progress=progress))))
    except ImageInputError as exc:
        raise fail(f"{exc.source}: {exc.problem}") from None
    except PromptError as exc:
        raise fail(f"--prompt: {exc.problem}") from None
    skipped = [{"image": names[i], "problem": scored.skipped[i].problem} for i in sorted(scored.skipped)]
    if not scored.scores:
        raise fail(f"none of the {len(names)} images could be read; the first: {skipped[0]['image']}: {skipped[0]['problem']}")
    kept = sorted(scored.scores)
    names, scores = [names[i] for i in kept], [scored.scores[i] for i in kept]
    promoted_as = promotion_record(model_path)
    if as_json:
        body: dict = {"model": str(model_path), "results": [{"image": n, "scores": s} for n, s in zip(names, scores, strict=True)]}
        if promoted_as:
            body["promoted_as"] = promoted_as
        if best_of:
            body["ranking"] = rank_best_of(names, scores)
        if skip_unreadable:
            body["skipped"] = skipped
        typer.echo(json.dumps(body, ensure_ascii=False, indent=2))
        return
    rows = rank_best_of(names, scores) if best_of else [{"rank": "", "image": n, "scores": s} for n, s in zip(names, scores, strict=True)]
    shown = f"{promoted_as['registered_model']} v{promoted_as['version']}, {model_path}" if promoted_as else str(model_path)
    table = RichTable(title=f"scores ({shown})")
    dims = list(scores[0])
    for column in (["rank"] if best_of else []) + ["image", *dims]:
        table.add_column(column, justify="left" if column == "image" else "right")
    for row in rows:
        cells = ([str(row["rank"])] if best_of else []) + [row["image"]] + [f"{row['scores'][d]:+.3f}" for d in dims]
        table.add_row(*cells)
    console.print(table)
    for entry in skipped:
        console.print(f"skipped {entry['image']}: {entry['problem']}", style="yellow", soft_wrap=True, markup=False, highlight=False)
    if skipped:
        console.print(f"{len(skipped)} of {len(skipped) + len(names)} images skipped", style="yellow")


@contextmanager
def _scoring_progress(total: int, chunk: int) -> Iterator[Callable[[int, int], None] | None]:
    """A progress bar on stderr for calls longer than one chunk (stdout stays the table or the JSON)."""
    if total <= chunk:
        yield None
        return
    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("scoring", total=total)
        yield lambda done, _total: bar.update(task, completed=done)


@app.command()
def serve(
    model: Annotated[Path | None, typer.Option(help="Saved model folder (default: the champion of the data root).")] = None,
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8000,
) -> None:
    """Serve POST /score over HTTP (FastAPI), the model loaded once."""
    import uvicorn

    from aesthetic_platform.serving import create_app

    model_path, scorer = _load_scorer(home, model)
    console.print(f"serving {model_path} on http://{host}:{port}  (POST /score, GET /health, docs at /docs)")
    uvicorn.run(create_app(scorer, served_model_info(model_path)), host=host, port=port, log_level="info")


def served_model_info(model_path: Path) -> dict:
    """What ``/health`` and every ``/score`` reply say about the model: its folder and, for a champion, the
    version it was promoted as (the server keeps the model it started with when the champion moves)."""
    from aesthetic_platform.registry import promotion_record

    promoted_as = promotion_record(model_path)
    return {"path": str(model_path), **({"promoted_as": promoted_as} if promoted_as else {})}


WORKBENCH_PORT = 8765


@app.command()
def workbench(
    home: HomeOption = None,
    host: Annotated[str, typer.Option(help="Bind address (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="HTTP port.")] = WORKBENCH_PORT,
    annotator: Annotated[str, typer.Option(help="Name stored with every selection (default: $USER).")] = "",
) -> None:
    """Start the golden-seed workbench (seed 001): pick golden seeds in the browser."""
    import getpass

    import uvicorn

    from aesthetic_platform.workbench.app import create_app

    root = data_root_option(home)
    who = annotator or os.environ.get("USER") or getpass.getuser()
    web = create_app(root, who)
    console.print(f"[green]workbench:[/green] http://{host}:{port}/  (annotator {who}, data {root.workbench}); Ctrl-C stops it")
    uvicorn.run(web, host=host, port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    app()
