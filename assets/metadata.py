"""Metadata every table asset shows in the Dagster UI: row count, column schema, plots.

The column schema comes from the table's pydantic row model (``schemas.py``), the same
one its writer and readers use, so the UI can never show a schema the files do not have.
"""

import base64
import hashlib
import importlib.util
from pathlib import Path

import dagster as dg

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tables import Table

SOURCE_SUFFIXES = {".py", ".txt", ".json"}


def column_schema(table: Table) -> dg.TableSchema:
    columns = []
    for name, dtype in table.dtypes.items():
        field = table.model.model_fields[name]
        columns.append(dg.TableColumn(name, str(dtype) if dtype is not None else "struct", description=field.description))
    return dg.TableSchema(columns=columns)


def root_path(root: DataRoot | None, path: str | Path) -> dg.MetadataValue:
    """A path as the UI shows it: relative to the data root (``tables/prompts``), since event logs keep
    metadata forever and an absolute path goes stale once the root is moved or copied."""
    return dg.MetadataValue.path(root.relative(path) if root is not None else str(path))


def table_metadata(table: Table, rows: int, path: Path, root: DataRoot | None = None) -> dict:
    """``dagster/row_count`` (this materialization's rows), ``dagster/column_schema`` and where the Parquet lives
    (relative to ``root`` when given)."""
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema(table),
        "table": root_path(root, path),
    }


def embedded_plots(plots: dict[str, Path], root: DataRoot | None = None) -> dict:
    """PNG plots as Markdown with the image inline, so they render on the asset page (paths stay as well,
    relative to ``root`` when given)."""
    metadata = {}
    for name, path in plots.items():
        encoded = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        shown = root.relative(path) if root is not None else str(path)
        metadata[f"plot_{name}"] = dg.MetadataValue.md(f"![{name}](data:image/png;base64,{encoded})\n\n`{shown}`")
    return metadata


def code_version_of(*packages: str) -> str:
    """A short hash of the source of the core packages an asset runs: editing them marks the asset's
    materializations as coming from older code in the UI, with no version number to forget to bump."""
    digest = hashlib.sha256()
    for package in sorted(packages):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(package)
        roots = spec.submodule_search_locations or [str(Path(spec.origin).parent)]
        files = [Path(spec.origin)] if not spec.submodule_search_locations else sorted(
            path for root in roots for path in Path(root).rglob("*") if path.suffix in SOURCE_SUFFIXES
        )
        for path in files:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]
