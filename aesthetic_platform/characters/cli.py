"""``aesthetic characters predict|add``: recognise characters, and teach new ones without retraining (no Dagster).

Both commands work on a saved character classifier (``--model``) and its prototype set in the
shared embedding store (``--home`` / ``--db-url``, the same store as ``aesthetic db``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table as RichTable

from aesthetic_platform.paths import DataRoot

characters_app = typer.Typer(help="Character classifier: predict characters, add new ones without retraining.", no_args_is_help=True)
console = Console()

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Data root (default: $AESTHETIC_HOME or ./.aesthetic).", show_default=False)
]
UrlOption = Annotated[str, typer.Option("--db-url", help="Store URL (default: $AESTHETIC_DB_URL, else SQLite under the data root).")]
ModelOption = Annotated[
    Path | None,
    typer.Option("--model", help="Saved character classifier folder (default: the newest under <data root>/characters/classifiers).",
                 show_default=False),
]
DeviceOption = Annotated[str, typer.Option("--device", help="torch device; empty means cuda when available, else cpu.")]


def _fail(message: str) -> typer.Exit:
    console.print(message, style="red", markup=False, soft_wrap=True)
    return typer.Exit(2)


def _database(model: Path | None, home: Path | None, db_url: str, device: str):
    from aesthetic_platform.characters.classifier import CharacterClassifier
    from aesthetic_platform.characters.prototypes import PrototypeDatabase, latest_classifier_dir
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    root = DataRoot.from_env(home)
    folder = model if model is not None else latest_classifier_dir(root)
    if folder is None:
        raise _fail(f"no saved character classifier under {root.root}: materialize character_classifier or pass --model DIR")
    try:
        classifier = CharacterClassifier.from_pretrained(folder)
    except FileNotFoundError as exc:
        raise _fail(f"{exc}; pass --model DIR (a folder written by the character_classifier asset)") from None
    store = Store.open(EmbeddingStoreConfig(db_url=db_url), root=root)
    return store, PrototypeDatabase(store, classifier, device=device)


def _check_files(images: list[Path]) -> None:
    """Every image decodes before any work starts (a clear error naming the file, nothing stored)."""
    from aesthetic_platform.characters.prototypes import load_images
    from aesthetic_platform.images import ImageInputError

    try:
        load_images(images)
    except ImageInputError as exc:
        raise _fail(str(exc)) from None


@characters_app.command("predict")
def predict(
    images: Annotated[list[Path], typer.Argument(help="Image files.", show_default=False)],
    model: ModelOption = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Runner-up classes shown per image.")] = 2,
    home: HomeOption = None,
    db_url: UrlOption = "",
    device: DeviceOption = "",
) -> None:
    """The character in each image (cosine similarity to the class prototypes), or 'unknown' under the calibrated threshold."""
    from aesthetic_platform.characters.prototypes import PrototypeError

    _check_files(images)
    store, db = _database(model, home, db_url, device)
    with store:
        try:
            prototype_set = db.require_current()
            predictions = db.predict(images, prototype_set)
        except PrototypeError as exc:
            raise _fail(str(exc)) from None
    calibrated = prototype_set.threshold is not None
    thresholds = prototype_set.class_thresholds()
    table = RichTable(title=f"{db.model_id}: {len(prototype_set.classes)} classes, "
                            f"{'a threshold per class' if calibrated else 'not calibrated'}")
    for column in ("image", "character", "similarity", "needed", "nearest classes"):
        table.add_column(column)
    for path, p in zip(images, predictions, strict=True):
        shown = p.label if p.known else f"unknown (nearest {p.top_class})"
        runners = ", ".join(f"{name} {sim:.3f}" for name, sim in p.ranking[:top])
        needed = f"{thresholds[p.top_class]:.3f}" if calibrated else "-"
        table.add_row(str(path), shown, f"{p.similarity:.3f}", needed, runners)
    console.print(table)


@characters_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Character name (the new class).", show_default=False)],
    images: Annotated[list[Path], typer.Argument(help="A few images of the character (5 is plenty).", show_default=False)],
    model: ModelOption = None,
    update: Annotated[bool, typer.Option("--update", help="Add the images to an existing class instead (running mean).")] = False,
    home: HomeOption = None,
    db_url: UrlOption = "",
    device: DeviceOption = "",
) -> None:
    """Imprint a new character from a few images: its prototype joins the set; the classifier is not trained or changed."""
    from aesthetic_platform.characters.prototypes import PrototypeError

    _check_files(images)
    store, db = _database(model, home, db_url, device)
    with store:
        try:
            new = db.update_class(name, images) if update else db.add_class(name, images)
        except PrototypeError as exc:
            hint = " (add --update to add these images to it)" if not update and "already exists" in str(exc) else ""
            raise _fail(f"{exc}{hint}") from None
    entry = new.classes[name]
    verb = "updated" if update else "added"
    console.print(f"{name}: {verb} from {len(images)} image(s), {entry.count} member image(s); "
                  f"{len(new.classes)} classes in the set of {db.model_id} (set {new.sha256[:12]})")
    if new.center is None or new.threshold is None:
        console.print("this set was not built by character_prototypes: without its feature centre and calibrated threshold, "
                      "similarities are less telling and nothing comes back unknown", style="yellow")
