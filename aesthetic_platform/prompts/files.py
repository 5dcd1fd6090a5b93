"""Prompt files uploaded by people (seed 001 §3.1): CSV or JSON, validated record by record.

A malformed file fails as a whole, before anything is stored, with an error that
names the file, the line (CSV) or record (JSON) and the field.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aesthetic_platform.prompts.records import ACCEPTED_FIELDS, PromptRecord


class PromptFileError(ValueError):
    """A prompt file cannot be imported; the message says where and why."""

    def __init__(self, source: str, location: str, field: str | None, problem: str) -> None:
        self.source, self.location, self.field, self.problem = source, location, field, problem
        where = f"{location}, field '{field}'" if field else location
        super().__init__(f"{source}: {where}: {problem}")


def _first_error(exc: ValidationError) -> tuple[str | None, str]:
    # an unknown field usually explains a missing one (a typo), so report it first
    err = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    message = err["msg"]
    if err["type"] == "extra_forbidden":
        message = f"unknown field; accepted fields are {', '.join(ACCEPTED_FIELDS)}"
    return field, message


def parse_csv(text: str, source: str = "<csv>") -> list[PromptRecord]:
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if not header:
        raise PromptFileError(source, "line 1", None, "the file is empty; expected a header row with a 'text' column")
    for column in header:
        if column is None or column.strip() not in ACCEPTED_FIELDS:
            raise PromptFileError(source, "line 1", str(column), f"unknown column; accepted columns are {', '.join(ACCEPTED_FIELDS)}")
    if "text" not in [c.strip() for c in header]:
        raise PromptFileError(source, "line 1", "text", "missing required column")
    records: list[PromptRecord] = []
    for row in reader:
        line = reader.line_num
        if None in row:
            raise PromptFileError(source, f"line {line}", None, f"{len(header) + len(row[None])} values for {len(header)} columns")
        if all(v in (None, "") for v in row.values()):
            continue
        values = {k.strip(): v for k, v in row.items() if v not in (None, "") or k.strip() == "text"}
        try:
            records.append(PromptRecord.model_validate(values))
        except ValidationError as exc:
            field, problem = _first_error(exc)
            raise PromptFileError(source, f"line {line}", field, problem) from None
    if not records:
        raise PromptFileError(source, "line 2", "text", "no prompt rows after the header")
    return records


def parse_json(text: str, source: str = "<json>") -> list[PromptRecord]:
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptFileError(source, f"line {exc.lineno}, column {exc.colno}", None, f"invalid JSON: {exc.msg}") from None
    if isinstance(data, dict) and "prompts" in data:
        data = data["prompts"]
    if not isinstance(data, list):
        raise PromptFileError(source, "top level", None, "expected a list of prompts or an object with a 'prompts' list")
    if not data:
        raise PromptFileError(source, "top level", "prompts", "the list of prompts is empty")
    records: list[PromptRecord] = []
    for index, item in enumerate(data):
        location = f"record {index + 1}"
        if isinstance(item, str):
            item = {"text": item}
        if not isinstance(item, dict):
            raise PromptFileError(source, location, None, f"expected an object or a string, got {type(item).__name__}")
        try:
            records.append(PromptRecord.model_validate(item))
        except ValidationError as exc:
            field, problem = _first_error(exc)
            raise PromptFileError(source, location, field, problem) from None
    return records


def parse_prompt_bytes(data: bytes, filename: str) -> list[PromptRecord]:
    """Parse an uploaded file by its extension (``.csv`` or ``.json``)."""
    suffix = Path(filename).suffix.lower()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PromptFileError(filename, f"byte {exc.start}", None, "the file is not UTF-8 text") from None
    if suffix == ".csv":
        return parse_csv(text, filename)
    if suffix == ".json":
        return parse_json(text, filename)
    raise PromptFileError(filename, "file name", None, f"unsupported extension {suffix or '(none)'!r}; use .csv or .json")


def read_prompt_file(path: str | Path) -> list[PromptRecord]:
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(str(path), "file", None, "no such file")
    return parse_prompt_bytes(path.read_bytes(), str(path))
