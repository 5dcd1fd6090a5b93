"""``aesthetic audit prompts FILE``: screen a prompt file with the audit rules (and, on request, the moderation endpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

app = typer.Typer(help="Content audit: screen prompts before they are rendered and judged.", no_args_is_help=True)
console = Console()


@app.command("prompts")
def audit_prompts(
    file: Annotated[Path, typer.Argument(help="CSV or JSON prompt file (the format of `aesthetic check-prompts`).", exists=True)],
    terms: Annotated[Path | None, typer.Option("--terms", help="JSON {category: [terms]} replacing the built-in term lists.")] = None,
    moderation: Annotated[bool, typer.Option("--moderation", help="Also ask the moderation endpoint (--base-url or environment).")] = False,
    base_url: Annotated[str, typer.Option("--base-url", help="Moderation endpoint base URL (default: environment).")] = "",
    model: Annotated[str, typer.Option("--model", help="Moderation model (default: omni-moderation-latest).")] = "",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON line per prompt.")] = False,
) -> None:
    """Print every flagged or unaudited prompt with its reason; exit 1 when any prompt is flagged or unaudited."""
    from aesthetic_platform.audit.config import AuditConfig
    from aesthetic_platform.audit.moderation import ModerationClient, ModerationOutcome
    from aesthetic_platform.audit.rules import TermRules
    from aesthetic_platform.audit.run import combine_verdict, prompt_text
    from aesthetic_platform.llm import EndpointSettings
    from aesthetic_platform.prompts import PromptFileError
    from aesthetic_platform.prompts.files import read_prompt_file

    try:
        records = read_prompt_file(file)
    except PromptFileError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    config = AuditConfig(terms_file=str(terms) if terms else "", moderation=moderation)
    rules = TermRules.from_config(config)
    specs = [r.to_spec("audit", "file") for r in records]
    texts = [prompt_text(s) for s in specs]
    outcomes: list[ModerationOutcome | None] = [None] * len(texts)
    if moderation:
        client = ModerationClient(EndpointSettings(base_url=base_url, model=model), config.score_thresholds)
        step = config.moderation_batch
        outcomes = [o for start in range(0, len(texts), step) for o in client.texts(texts[start : start + step])]
    table = RichTable("line", "status", "categories", "reason / error", "text")
    bad = 0
    for index, (text, outcome) in enumerate(zip(texts, outcomes, strict=True), start=1):
        status, categories, reason, error = combine_verdict(rules.screen(text), outcome)
        bad += status != "passed"
        if as_json:
            print(json.dumps({"record": index, "status": status, "categories": categories, "reason": reason, "error": error, "text": text},
                             ensure_ascii=False))
        elif status != "passed":
            table.add_row(str(index), status, ", ".join(categories), reason or error, text[:80])
    if not as_json:
        console.print(table if bad else f"{file}: all {len(texts)} prompts pass")
    raise typer.Exit(1 if bad else 0)
