"""``aesthetic db …``, ``aesthetic labels …`` and ``aesthetic similar``: the store from the command line (no Dagster)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from aesthetic_platform.paths import DataRoot

app = typer.Typer()
db_app = typer.Typer(help="The embedding and label store's database.", no_args_is_help=True)
labels_app = typer.Typer(help="Multi-annotator labels: import, export, review queue, agreement.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(labels_app, name="labels")
classifier_app = typer.Typer(help="Classifiers on cached embeddings.", no_args_is_help=True)
app.add_typer(classifier_app, name="classifier")
console = Console()

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data root (default: $AESTHETIC_HOME or ./.aesthetic).", show_default=False)
]
UrlOption = Annotated[str, typer.Option("--db-url", help="Store URL (default: $AESTHETIC_DB_URL, else SQLite under the data root).")]


def _open(home: Path | None, db_url: str = ""):
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    return Store.open(EmbeddingStoreConfig(db_url=db_url), root=DataRoot.from_env(home))


@db_app.command("upgrade")
def db_upgrade(home: HomeOption = None, db_url: UrlOption = "") -> None:
    """Create or migrate the store's tables to the newest revision (also done on first use)."""
    from aesthetic_platform.embeddings import EmbeddingStoreConfig
    from aesthetic_platform.embeddings import db as store_db

    url = EmbeddingStoreConfig(db_url=db_url).resolved_url(DataRoot.from_env(home))
    engine = store_db.make_engine(url)
    try:
        before = store_db.current_revision(engine)
        head = store_db.upgrade(engine, force=True)
    finally:
        engine.dispose()
    shown = engine.url.render_as_string(hide_password=True)
    done = "already at" if before == head else f"upgraded from {before or 'an empty database'} to"
    console.print(f"{shown}: {done} {head}")


@labels_app.command("import")
def labels_import(
    file: Annotated[Path, typer.Argument(help="CSV or JSON: item (sha256), task, annotator, label, optional created_at.")],
    home: HomeOption = None,
    db_url: UrlOption = "",
) -> None:
    """Append the labels of a file; a bad file is refused as a whole, naming file, line and field."""
    from aesthetic_platform.embeddings.labels import LabelFileError, import_label_file

    with _open(home, db_url) as store:
        try:
            count = import_label_file(store, file)
        except LabelFileError as exc:
            console.print(str(exc), style="red", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    console.print(f"{file}: {count} labels imported")


@labels_app.command("export")
def labels_export(
    file: Annotated[Path, typer.Argument(help="Target .csv or .json (the import format).")],
    task: Annotated[str | None, typer.Option("--task", help="Only this task.")] = None,
    effective: Annotated[bool, typer.Option("--effective", help="Only the latest label per (item, task, annotator).")] = False,
    home: HomeOption = None,
    db_url: UrlOption = "",
) -> None:
    """Write labels (the whole append-only history unless --effective)."""
    from aesthetic_platform.embeddings.labels import export_labels

    with _open(home, db_url) as store:
        count = export_labels(store, file, task=task, effective=effective)
    console.print(f"{file}: {count} labels written")


@labels_app.command("review")
def labels_review(
    task: Annotated[str, typer.Option("--task", help="Label task.")],
    home: HomeOption = None,
    db_url: UrlOption = "",
) -> None:
    """The review queue of a task (disputed items, ties first) and its agreement statistics."""
    from aesthetic_platform.embeddings.labels import agreement, review_queue

    with _open(home, db_url) as store:
        queue = review_queue(store, task)
        stats = agreement(store, task)
        found = store.get_items([c.item for c in queue])
    table = RichTable(title=f"review queue: {task} ({len(queue)} items)")
    for column in ("item", "votes", "consensus", "content"):
        table.add_column(column)
    for c in queue:
        item = found.get(c.item)
        content = (item.path or item.text or "") if item else ""
        table.add_row(c.item[:12], ", ".join(f"{k}: {v}" for k, v in c.votes.items()), c.label or "(tie)", content[:60])
    console.print(table)
    alpha = "undefined" if stats.alpha is None else f"{stats.alpha:.3f}"
    console.print(f"Krippendorff's alpha (nominal): {alpha} over {stats.items} items, {stats.annotators} annotators")
    for who, row in stats.per_annotator.items():
        console.print(f"  {who}: {int(row['labels'])} labels, agrees with the others' majority on {row['agreement']:.0%} "
                      f"of {int(row['compared'])} comparable items")


@app.command()
def similar(
    image: Annotated[Path, typer.Argument(help="Query image.", exists=True, dir_okay=False)],
    k: Annotated[int, typer.Option("--k", min=1, help="How many neighbours.")] = 10,
    model: Annotated[str | None, typer.Option("--model", help="Embedding model id name@version (default: the latest image model).")] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", help="Student model folder to embed a new query (default: champion).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    home: HomeOption = None,
    db_url: UrlOption = "",
) -> None:
    """Print the stored items nearest to IMAGE by cosine similarity of their embeddings."""
    from aesthetic_platform.atomic import sha256_file
    from aesthetic_platform.embeddings import StoreError
    from aesthetic_platform.embeddings.embedders import StudentImageEmbedder, image_item
    from aesthetic_platform.registry import NoModelError, resolve_model

    root = DataRoot.from_env(home)
    with _open(home, db_url) as store:
        try:
            if model:
                record = store.model(model)
            else:
                image_models = [m for m in store.models() if m.modality == "image"]
                if not image_models:
                    raise StoreError("no image embeddings in the store yet: materialize image_embeddings first")
                record = image_models[-1]
            sha = sha256_file(image)
            query = store.get_many(record, [sha]).get(sha)
            if query is None:
                if record.name != "student-image":
                    raise StoreError(f"{image} is not in the store under {record.model_id}, and only student-image models embed here")
                embedder = StudentImageEmbedder(resolve_model(root, checkpoint))
                if embedder.spec.version != record.version:
                    raise StoreError(f"the checkpoint is {embedder.model_id}, not {record.model_id}; pass --checkpoint or --model")
                query = embedder.embed([image_item(image, sha)])[0]
            hits = [h for h in store.search(record, query, k=k + 1) if h.sha256 != sha][:k]
        except (StoreError, NoModelError) as exc:
            console.print(str(exc), style="red", markup=False, soft_wrap=True)
            raise typer.Exit(2) from None
    rows = [{"rank": i + 1, "similarity": round(h.similarity, 4), "sha256": h.sha256, "path": h.item.path if h.item else None}
            for i, h in enumerate(hits)]
    if as_json:
        print(json.dumps({"model": record.model_id, "query": str(image), "neighbors": rows}, ensure_ascii=False))
        return
    table = RichTable(title=f"nearest to {image} ({record.model_id})")
    for column in ("rank", "similarity", "sha256", "path"):
        table.add_column(column)
    for row in rows:
        table.add_row(str(row["rank"]), f"{row['similarity']:.4f}", row["sha256"][:12], row["path"] or "")
    console.print(table)


@classifier_app.command("sweep")
def classifier_sweep(
    task: Annotated[str, typer.Option("--task", help="Label task to learn.")],
    grid: Annotated[list[str], typer.Option("--grid", help="NAME=V1,V2: values to try for one classifier setting (repeatable).")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="NAME=VALUE: a setting for every run (repeatable).")] = None,
    home: HomeOption = None,
) -> None:
    """Request a grid sweep: the classifier_sweep_sensor queues one embedding_classifier run per grid point."""
    from pydantic import ValidationError

    from aesthetic_platform.embeddings.classifier import ClassifierSettings
    from aesthetic_platform.embeddings.sweep import new_sweep, parse_grid, submit_sweep

    try:
        base_values = {k: v[0] for k, v in parse_grid(set_ or []).items()}
        spec = new_sweep(ClassifierSettings.model_validate({**base_values, "task": task}), parse_grid(grid))
    except (ValueError, ValidationError) as exc:
        console.print(str(exc), style="red", markup=False, soft_wrap=True)
        raise typer.Exit(2) from None
    path = submit_sweep(DataRoot.from_env(home), spec)
    console.print(f"sweep {spec.sweep_id}: {len(spec.configs())} runs requested -> {path} (queued by classifier_sweep_sensor)")
