"""Classifier sweeps: a grid over ``ClassifierSettings``, handed to Dagster as a request file.

``aesthetic classifier sweep`` writes the request under ``$AESTHETIC_HOME/sweeps/``; the
``classifier_sweep_sensor`` opens one MLflow parent run per sweep and queues one
``embedding_classifier`` run per grid point (each its own MLflow child run), then moves
the file to ``sweeps/submitted/``.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import secrets
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.atomic import write_json
from aesthetic_platform.embeddings.classifier import ClassifierSettings
from aesthetic_platform.paths import DataRoot

MAX_SWEEP_RUNS = 256


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sweep_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    base: ClassifierSettings
    grid: dict[str, list[Any]] = Field(description="field of ClassifierSettings -> values to try")
    parent_run_id: str = ""
    created_at: dt.datetime

    @model_validator(mode="after")
    def _check(self) -> SweepSpec:
        unknown = sorted(set(self.grid) - set(ClassifierSettings.model_fields))
        if unknown:
            raise ValueError(f"unknown classifier settings in the grid: {', '.join(unknown)}")
        if any(not values for values in self.grid.values()):
            raise ValueError("every grid entry needs at least one value")
        if len(self.configs()) > MAX_SWEEP_RUNS:
            raise ValueError(f"the grid has more than {MAX_SWEEP_RUNS} points")
        return self

    def configs(self) -> list[ClassifierSettings]:
        """The grid's cartesian product over the base settings, each validated."""
        keys = list(self.grid)
        base = self.base.model_dump()
        return [ClassifierSettings.model_validate({**base, **dict(zip(keys, values, strict=True))})
                for values in itertools.product(*(self.grid[k] for k in keys))]


def parse_grid(entries: list[str]) -> dict[str, list[Any]]:
    """``["head=logistic,mlp", "learning_rate=0.01,0.001"]`` -> values typed by ``ClassifierSettings`` on expansion."""
    grid: dict[str, list[Any]] = {}
    for entry in entries:
        key, sep, values = entry.partition("=")
        if not sep or not key.strip() or not values.strip():
            raise ValueError(f"grid entry {entry!r}: use NAME=V1,V2")
        grid[key.strip()] = [v.strip() for v in values.split(",") if v.strip()]
    return grid


def new_sweep(base: ClassifierSettings, grid: dict[str, list[Any]]) -> SweepSpec:
    now = dt.datetime.now(dt.UTC)
    return SweepSpec(sweep_id=f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}", base=base, grid=grid, created_at=now)


def submit_sweep(root: DataRoot, spec: SweepSpec) -> Path:
    return write_json(root.classifier_sweeps / f"{spec.sweep_id}.json", json.loads(spec.model_dump_json()))


def pending_sweeps(root: DataRoot) -> list[tuple[Path, SweepSpec]]:
    folder = root.classifier_sweeps
    if not folder.is_dir():
        return []
    return [(path, SweepSpec.model_validate_json(path.read_text(encoding="utf-8"))) for path in sorted(folder.glob("*.json"))]


def record_parent(path: Path, spec: SweepSpec, parent_run_id: str) -> SweepSpec:
    """Remember the MLflow parent run in the request, so a re-evaluated sensor reuses it."""
    updated = spec.model_copy(update={"parent_run_id": parent_run_id})
    write_json(path, json.loads(updated.model_dump_json()))
    return updated


def mark_submitted(path: Path) -> Path:
    target = path.parent / "submitted" / path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    path.replace(target)
    return target
