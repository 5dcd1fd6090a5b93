"""Where the current champion model lives on disk, for every scoring surface.

MLflow's registered model ``aesthetic-scorer`` with alias ``champion`` is the record of
truth; on promotion the checkpoint is also mirrored to ``$AESTHETIC_HOME/models/champion``
so the CLI, the HTTP server and the workbench can load it without a tracking server.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aesthetic_platform.atomic import write_json
from aesthetic_platform.paths import DataRoot

CHAMPION_INFO = "champion.json"


class NoModelError(FileNotFoundError):
    """No model was given and the data root has no champion yet."""


def champion_dir(root: DataRoot) -> Path:
    return root.champion


def has_champion(root: DataRoot) -> bool:
    return (champion_dir(root) / "config.json").exists()


def resolve_model(root: DataRoot, path: str | Path | None = None) -> Path:
    """An explicit model folder, else the champion of the data root, else a clear error."""
    if path is not None:
        model = Path(path).expanduser()
        if not (model / "config.json").exists():
            raise NoModelError(f"{model} is not a saved aesthetic model (no config.json); pass a folder written by save_pretrained")
        return model
    if not has_champion(root):
        raise NoModelError(
            f"no champion model under {root.root}: run `aesthetic demo` or materialize `aesthetic_model` and `eval_report` first, "
            "or pass --model PATH"
        )
    return champion_dir(root)


def promotion_record(model_dir: str | Path) -> dict[str, str] | None:
    """What a champion folder was promoted as (registered model, version, run key), from its ``champion.json``;
    None for any other model folder, or for a champion placed by hand. Scores are labelled with it, so that
    scores from before and after a promotion can be told apart."""
    try:
        info = json.loads((Path(model_dir) / CHAMPION_INFO).read_text(encoding="utf-8"))
        return {key: str(info[key]) for key in ("registered_model", "version", "run_key")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def champion_leftovers(root: DataRoot) -> list[Path]:
    """Staging and retired folders a promotion leaves beside the champion only when its process died mid-way."""
    parent = champion_dir(root).parent
    if not parent.is_dir():
        return []
    return sorted(path for pattern in (".champion-*", ".retired-*", ".unconfirmed-*") for path in parent.glob(pattern))


def roll_back_champion_folder(root: DataRoot, unconfirmed_version: str) -> None:
    """Undo the folder half of a promotion whose process died before it was recorded.

    The champion folder goes back to the one retired for it (or away, if there was none before);
    a folder that never got swapped in is left alone. Leftover staging and retired folders go."""
    target = champion_dir(root)
    current = promotion_record(target) or {}
    if current.get("version") == unconfirmed_version:
        retired = sorted(target.parent.glob(".retired-*"), key=lambda path: path.stat().st_mtime)
        unconfirmed = target.with_name(f".unconfirmed-{unconfirmed_version}")
        shutil.rmtree(unconfirmed, ignore_errors=True)  # an earlier recovery killed in turn
        target.rename(unconfirmed)
        if retired:
            retired[-1].rename(target)
        shutil.rmtree(unconfirmed, ignore_errors=True)
    for leftover in champion_leftovers(root):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def champion_swap(root: DataRoot, model_dir: Path, info: dict) -> Iterator[Path]:
    """Make ``model_dir`` the champion folder for the block; if the block raises, the old champion comes back.

    The copy is staged beside the target and swapped in with renames, so a reader sees
    either the old or the new champion, never half of one."""
    target = champion_dir(root)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".champion-", dir=target.parent))
    retired = target.with_name(f".retired-{staging.name}")
    try:
        shutil.copytree(model_dir, staging, dirs_exist_ok=True)
        write_json(staging / CHAMPION_INFO, info)
        if target.exists():
            target.rename(retired)
        try:
            staging.rename(target)
        except OSError:
            if retired.exists():
                retired.rename(target)  # the old champion stays champion
            raise
        try:
            yield target
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            if retired.exists():
                retired.rename(target)
            raise
        shutil.rmtree(retired, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
