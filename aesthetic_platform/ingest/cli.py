"""``aesthetic crawl ...``: register crawl sources, crawl them, look at their state."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from aesthetic_platform.ingest.config import CrawlConfig, CrawlSource, get_source, load_sources, register_source
from aesthetic_platform.paths import DataRoot

app = typer.Typer(help="Reference-image crawler: sources, crawls, frontier state.", no_args_is_help=True)
console = Console()

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data root (default: $AESTHETIC_HOME or ./.aesthetic).", show_default=False)
]


def _root(home: Path | None) -> DataRoot:
    return DataRoot.from_env(home).ensure()


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Source name (letters, digits, '.', '_', '-'); also its crawl_source partition key.")],
    gallery: Annotated[list[str] | None, typer.Option("--gallery", help="Start (list) page URL of a gallery site; repeatable.")] = None,
    urls: Annotated[Path | None, typer.Option("--urls", help="A .txt or .csv file of image URLs.", exists=True, dir_okay=False)] = None,
    home: HomeOption = None,
) -> None:
    """Register (or replace) a crawl source."""
    if bool(gallery) == bool(urls):
        console.print("[red]give exactly one of --gallery URL or --urls FILE[/red]")
        raise typer.Exit(2)
    try:
        if gallery:
            source = CrawlSource(name=name, kind="gallery", start_urls=gallery)
        else:
            source = CrawlSource(name=name, kind="urls", file=str(urls))
    except ValueError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    path = register_source(_root(home), source)
    console.print(f"source {name!r} ({source.kind}) -> {path}")


@app.command("list")
def list_sources(home: HomeOption = None) -> None:
    """Registered sources and what each one has stored."""
    from aesthetic_platform.ingest.frontier import Frontier

    root = _root(home)
    table = RichTable("source", "kind", "start", "images stored", "pending")
    for name, source in load_sources(root).items():
        stored, pending = 0, 0
        if root.crawl_frontier(name).exists():
            with Frontier(root.crawl_frontier(name)) as frontier:
                counts = frontier.state_counts()
                stored = len(frontier.image_records())
                pending = sum(states.get("pending", 0) + states.get("in_progress", 0) for states in counts.values())
        table.add_row(name, source.kind, ", ".join(source.start_urls) or source.file, str(stored), str(pending))
    console.print(table)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="A registered source.")],
    rate: Annotated[float | None, typer.Option("--rate", help="Requests per second per host.")] = None,
    per_host: Annotated[int | None, typer.Option("--per-host", help="Requests in flight per host.")] = None,
    max_images: Annotated[int | None, typer.Option("--max-images", help="Images fetched in this run (0: no limit).")] = None,
    max_pages: Annotated[int | None, typer.Option("--max-pages", help="HTML pages fetched in this run (0: no limit).")] = None,
    user_agent: Annotated[str | None, typer.Option("--user-agent", help="User-Agent header (and robots.txt name).")] = None,
    proxy: Annotated[str | None, typer.Option("--proxy", help="HTTP(S) proxy URL.")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", help="JSON file of CrawlConfig fields.", exists=True)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    home: HomeOption = None,
) -> None:
    """Crawl a source; a killed crawl resumes where it stopped."""
    from aesthetic_platform.ingest.crawl import CrawlBusyError, crawl

    logging.basicConfig(level=logging.WARNING)
    root = _root(home)
    try:
        source = get_source(root, name)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from None
    fields = json.loads(config_file.read_text(encoding="utf-8")) if config_file else {}
    overrides = {
        "requests_per_second_per_host": rate, "max_concurrency_per_host": per_host, "max_images": max_images,
        "max_pages": max_pages, "user_agent": user_agent, "proxy": proxy,
    }
    fields.update({k: v for k, v in overrides.items() if v is not None})
    try:
        report = crawl(root, source, CrawlConfig.model_validate(fields))
    except CrawlBusyError as exc:
        console.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(report.summary(), sort_keys=True))
        return
    console.print(
        f"{name}: {report.pages_fetched} pages, {report.images_fetched} images fetched, {report.images_stored} stored "
        f"({report.duplicates} duplicates) in {report.duration_s:.1f} s; {report.total_images} images in {report.table}"
    )
    if report.skipped:
        console.print(f"skipped: {dict(report.skipped)}")
    if report.failed:
        console.print(f"[yellow]failed (retried next run): {dict(report.failed)}[/yellow]")


@app.command("status")
def status(name: Annotated[str, typer.Argument(help="A registered source.")], home: HomeOption = None) -> None:
    """URL states of a source's frontier, and the reasons of skipped and failed URLs."""
    from aesthetic_platform.ingest.frontier import Frontier

    root = _root(home)
    path = root.crawl_frontier(name)
    if not path.exists():
        console.print(f"source {name!r} has not been crawled yet")
        raise typer.Exit(1)
    with Frontier(path) as frontier:
        table = RichTable("kind", "pending", "in_progress", "done", "skipped", "failed")
        for kind, states in sorted(frontier.state_counts().items()):
            table.add_row(kind, *(str(states.get(s, 0)) for s in ("pending", "in_progress", "done", "skipped", "failed")))
        console.print(table)
        for state in ("skipped", "failed"):
            reasons = {k: v for k, v in frontier.reasons(state).items() if k}
            if reasons:
                console.print(f"{state}: {reasons}")
