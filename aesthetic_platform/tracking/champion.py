"""Promotion: the champion folder and MLflow's ``champion`` alias move together or not at all."""

from __future__ import annotations

from typing import Any

import mlflow

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.registry import champion_swap
from aesthetic_platform.tracking.runs import TrainedModel
from aesthetic_platform.tracking.store import CHAMPION_ALIAS, TrackingConfig


def promote_champion(root: DataRoot, trained: TrainedModel, tracking: TrackingConfig, evaluation: dict[str, Any]) -> None:
    """Swap the champion folder in, then move the alias; a failed alias move puts the old folder back."""
    tracking.activate()
    info = {**trained.as_dict(), "evaluation": evaluation}
    with champion_swap(root, trained.path(root), info):
        mlflow.MlflowClient().set_registered_model_alias(trained.registered_model, CHAMPION_ALIAS, trained.version)


def champion_version(tracking: TrackingConfig, registered_model: str) -> str | None:
    """The registered version the alias points at, or None before the first promotion."""
    tracking.activate()
    try:
        return str(mlflow.MlflowClient().get_model_version_by_alias(registered_model, CHAMPION_ALIAS).version)
    except mlflow.exceptions.MlflowException:
        return None
