"""Promotion: the champion folder and MLflow's ``champion`` alias move together or not at all.

A promotion writes its intent (``models/promotion.json``) before it touches anything and removes
it once folder, alias and the gate's history all agree. A process killed in between leaves the
intent behind, and ``recover_interrupted_promotion`` finishes or undoes it before anything reads
the champion again: a champion the history does not know would let a worse model pass the gate.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow

from aesthetic_platform.atomic import write_json
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import champion_dir, champion_leftovers, champion_swap, roll_back_champion_folder
from aesthetic_platform.tracking.runs import TrainedModel
from aesthetic_platform.tracking.store import CHAMPION_ALIAS, TrackingConfig


def promote_champion(
    root: DataRoot, trained: TrainedModel, tracking: TrackingConfig, evaluation: dict[str, Any],
    on_promoted: Callable[[], None] | None = None,
) -> None:
    """Swap the champion folder in, move the alias, then ``on_promoted`` (the gate's history record).

    If any step fails, the old folder and the old alias come back: a champion the history does
    not know about would let a later, worse model pass the gate."""
    tracking.activate()
    info = {**trained.as_dict(), "evaluation": evaluation}
    client = mlflow.MlflowClient()
    previous = champion_version(tracking, trained.registered_model)
    intent = promotion_intent(root)
    write_json(intent, {
        "registered_model": trained.registered_model, "version": trained.version, "previous": previous,
        "started_at": dt.datetime.now(dt.UTC).isoformat(),
    })
    try:
        with champion_swap(root, trained.path(root), info):
            client.set_registered_model_alias(trained.registered_model, CHAMPION_ALIAS, trained.version)
            try:
                if on_promoted is not None:
                    on_promoted()
            except BaseException:
                _restore_alias(client, trained.registered_model, previous)
                raise
    finally:
        intent.unlink(missing_ok=True)  # done or undone here; only a killed process leaves it


def promotion_intent(root: DataRoot) -> Path:
    """Where a promotion in progress records what it is doing (``models/promotion.json``)."""
    return champion_dir(root).with_name("promotion.json")


def recover_interrupted_promotion(root: DataRoot, tracking: TrackingConfig, recorded: Callable[[dict[str, Any]], bool]) -> str:
    """Finish or undo a promotion whose process was killed; returns what was done ("" when there was none).

    ``recorded(intent)`` says whether the gate's history holds the promoted version: its record is the
    last step, so with it the promotion happened and only leftovers go; without it, the champion
    folder and the alias go back to what they were."""
    path = promotion_intent(root)
    if not path.exists():
        return ""
    intent = json.loads(path.read_text(encoding="utf-8"))
    name, version, previous = intent["registered_model"], str(intent["version"]), intent.get("previous")
    if recorded(intent):
        for leftover in champion_leftovers(root):
            shutil.rmtree(leftover, ignore_errors=True)
        done = f"an interrupted promotion of {name} v{version} was recorded: finished it"
    else:
        roll_back_champion_folder(root, version)
        tracking.activate()
        client = mlflow.MlflowClient()
        try:
            _restore_alias(client, name, previous)
        except mlflow.exceptions.MlflowException:
            pass  # the alias was never moved (nothing to delete)
        done = f"an interrupted promotion of {name} v{version} was never recorded: undid it (champion back to {previous or 'none'})"
    path.unlink()
    return done


def _restore_alias(client: mlflow.MlflowClient, registered_model: str, previous: str | None) -> None:
    if previous is None:
        client.delete_registered_model_alias(registered_model, CHAMPION_ALIAS)
    else:
        client.set_registered_model_alias(registered_model, CHAMPION_ALIAS, previous)


def champion_version(tracking: TrackingConfig, registered_model: str) -> str | None:
    """The registered version the alias points at, or None before the first promotion."""
    tracking.activate()
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(registered_model, CHAMPION_ALIAS).version)
    except mlflow.exceptions.MlflowException:
        return None
