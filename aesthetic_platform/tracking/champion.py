"""Promotion: the champion folder and MLflow's ``champion`` alias move together or not at all."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mlflow

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import champion_swap
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
    with champion_swap(root, trained.path(root), info):
        client.set_registered_model_alias(trained.registered_model, CHAMPION_ALIAS, trained.version)
        try:
            if on_promoted is not None:
                on_promoted()
        except BaseException:
            _restore_alias(client, trained.registered_model, previous)
            raise


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
