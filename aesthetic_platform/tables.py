"""One schema per table: a pydantic model that writer and reader both go through.

``Table(name, Model)`` derives the polars schema from the model's annotations, so the
Parquet columns can never drift from the pydantic contract. Writers validate every
row before anything touches disk; readers check the columns and types of what they
load and say exactly which column is wrong.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import polars as pl
from pydantic import BaseModel, ValidationError

from aesthetic_platform.atomic import write_with
from aesthetic_platform.paths import DataRoot

M = TypeVar("M", bound=BaseModel)

_SCALARS: dict[Any, pl.DataType] = {
    str: pl.String(),
    int: pl.Int64(),
    float: pl.Float64(),
    bool: pl.Boolean(),
    dt.datetime: pl.Datetime("us", "UTC"),
    dt.date: pl.Date(),
}


class SchemaError(ValueError):
    """A table on disk or in memory does not match its schema."""


def _strip_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    if origin is typing.Annotated:
        return _strip_optional(typing.get_args(annotation)[0])
    return annotation


def polars_dtype(annotation: Any) -> pl.DataType | None:
    """Polars type for a pydantic field; ``None`` means a struct whose fields follow the data."""
    annotation = _strip_optional(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    origin = typing.get_origin(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return _SCALARS[type(typing.get_args(annotation)[0])]
    if origin in (list, tuple, Sequence):
        (inner,) = typing.get_args(annotation)[:1]
        inner_type = polars_dtype(inner)
        return pl.List(inner_type) if inner_type is not None else None
    if origin is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return None
    raise TypeError(f"no polars type for annotation {annotation!r}")


class Table(Generic[M]):
    """A named table with one pydantic row model."""

    def __init__(self, name: str, model: type[M], path_fields: Sequence[str] = ()) -> None:
        self.name = name
        self.model = model
        self.path_fields = tuple(path_fields)  # file paths under the data root, rebased by ``rows(..., root)``
        self.dtypes: dict[str, pl.DataType | None] = {
            field: polars_dtype(info.annotation) for field, info in model.model_fields.items()
        }

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes)

    def empty(self) -> pl.DataFrame:
        """No rows, every column. A nested column is typed Null: Parquet cannot store a struct with no fields."""
        return pl.DataFrame(schema={c: (t if t is not None else pl.Null) for c, t in self.dtypes.items()})

    def frame(self, rows: Iterable[M | dict[str, Any]]) -> pl.DataFrame:
        """Validate rows through the model and build a frame with exactly the schema's columns."""
        records = [self._validate_row(i, row).model_dump(mode="python") for i, row in enumerate(rows)]
        if not records:
            return self.empty()
        schema = {c: t for c, t in self.dtypes.items() if t is not None}
        frame = pl.DataFrame(records, schema_overrides=schema, infer_schema_length=None)
        return frame.select(self.columns)

    def _validate_row(self, index: int, row: M | dict[str, Any]) -> M:
        if isinstance(row, self.model):
            return row
        try:
            return self.model.model_validate(row)
        except ValidationError as exc:
            raise SchemaError(f"{self.name}: row {index} is invalid: {exc}") from exc

    def check(self, frame: pl.DataFrame, source: str | Path | None = None) -> pl.DataFrame:
        """Raise ``SchemaError`` naming every missing column and every column of the wrong type."""
        where = f" in {source}" if source else ""
        missing = [c for c in self.columns if c not in frame.columns]
        problems = [f"missing column {c!r}" for c in missing]
        for column, expected in self.dtypes.items():
            if column in missing:
                continue
            actual = frame.schema[column]
            if expected is None:
                if not isinstance(actual, pl.Struct) and actual != pl.Null:
                    problems.append(f"column {column!r} is {actual}, expected a struct")
            elif actual != expected and actual != pl.Null:
                problems.append(f"column {column!r} is {actual}, expected {expected}")
        if problems:
            raise SchemaError(f"table {self.name!r}{where}: " + "; ".join(problems))
        return frame.select(self.columns)

    def write(self, data: pl.DataFrame | Iterable[M | dict[str, Any]], path: str | Path) -> Path:
        frame = self.check(data) if isinstance(data, pl.DataFrame) else self.frame(data)
        return write_with(path, lambda tmp: frame.write_parquet(tmp))

    def read(self, path: str | Path) -> pl.DataFrame:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"table {self.name!r} not found at {path}; materialize it first")
        return self.check(pl.read_parquet(path), source=path)

    def read_many(self, paths: Iterable[str | Path]) -> pl.DataFrame:
        frames = [self.read(p) for p in paths]
        return pl.concat(frames, how="diagonal_relaxed") if frames else self.empty()

    def rows(self, frame: pl.DataFrame, root: DataRoot | None = None) -> list[M]:
        """Validated rows; with ``root``, every path field is read against it (see ``DataRoot.resolve``)."""
        rows = [self.model.model_validate(r) for r in frame.iter_rows(named=True)]
        if root is None or not self.path_fields:
            return rows
        return [self._resolved(row, root) for row in rows]

    def _resolved(self, row: M, root: DataRoot) -> M:
        update = {name: str(root.resolve(value)) for name in self.path_fields if (value := getattr(row, name))}
        return row.model_copy(update=update)
