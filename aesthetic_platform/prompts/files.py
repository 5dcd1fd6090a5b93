"""Prompt files uploaded by people (seed 001 §3.1): CSV or JSON, validated record by record.

A malformed file fails as a whole, before anything is stored, with an error that
names the file, the line (CSV) or record (JSON) and the field. Whatever goes wrong while
reading (a CSV value over the csv module's field limit, JSON nested past the recursion
limit, bytes that are not UTF-8, an unreadable file) is a ``PromptFileError``, never a
bare exception.

Limits: a file holds at most ``MAX_PROMPT_FILE_BYTES`` bytes; a prompt is 1 to
``MAX_PROMPT_CHARS`` characters after surrounding whitespace is stripped (longer prompts
are refused, not cut).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aesthetic_platform.prompts.records import ACCEPTED_FIELDS, MAX_PROMPT_CHARS, PromptRecord

#: Largest prompt file read (CSV or JSON): 32 MiB, room for well over 10,000 prompts of the longest kind.
MAX_PROMPT_FILE_BYTES = 32 * 1024 * 1024
#: Longest name or problem quoted in an error, so a hostile value never floods a log or a terminal.
_MAX_QUOTED_CHARS = 200


def _short(text: str) -> str:
    return text if len(text) <= _MAX_QUOTED_CHARS else f"{text[: _MAX_QUOTED_CHARS - 1]}…"


class PromptFileError(ValueError):
    """A prompt file cannot be imported; the message says where and why."""

    def __init__(self, source: str, location: str, field: str | None, problem: str) -> None:
        field = _short(field) if field is not None else None
        problem = _short(problem)
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
    try:
        return _parse_csv_rows(reader, source)
    except csv.Error as exc:
        number = reader.line_num + 1  # the csv module counts the lines of completed records only
        if "field larger than field limit" in str(exc):
            limit = csv.field_size_limit()
            field = _overlong_field(text, number, reader.fieldnames if number > 1 else None, limit)
            problem = f"a value is longer than {limit:,} characters (a prompt may have at most {MAX_PROMPT_CHARS:,})"
            raise PromptFileError(source, f"line {number}", field, problem) from None
        raise PromptFileError(source, f"line {number}", None, f"not valid CSV: {exc}") from None


def _overlong_field(text: str, line: int, header: Sequence[str] | None, limit: int) -> str | None:
    """The column whose value passes ``limit`` in the record starting at ``line`` (default CSV dialect), if it can be told."""
    start = 0
    for _ in range(line - 1):
        start = text.find("\n", start) + 1
        if start == 0:
            return None
    column = length = 0
    quoted = False
    for char in itertools.islice(text, start, None):
        if char == '"':
            quoted = not quoted
            continue
        if not quoted and char == ",":
            column, length = column + 1, 0
            continue
        if not quoted and char in "\r\n":
            return None
        length += 1
        if length > limit:
            if header is None:
                return f"column {column + 1}"
            return header[column] if column < len(header) else f"column {column + 1}"
    return None


def _parse_csv_rows(reader: csv.DictReader, source: str) -> list[PromptRecord]:
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
    except RecursionError:
        raise PromptFileError(source, "top level", None, "invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise PromptFileError(source, "top level", None, f"invalid JSON: {exc}") from None
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
        except RecursionError:
            raise PromptFileError(source, location, None, "nested too deeply") from None
    return records


def parse_prompt_bytes(data: bytes, filename: str) -> list[PromptRecord]:
    """Parse an uploaded file by its extension (``.csv`` or ``.json``); every failure is a ``PromptFileError``."""
    suffix = Path(filename).suffix.lower()
    if suffix not in (".csv", ".json"):
        raise PromptFileError(filename, "file name", None, f"unsupported extension {_short(suffix) or '(none)'!r}; use .csv or .json")
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(filename, "file", None, f"{len(data):,} bytes; the limit is {MAX_PROMPT_FILE_BYTES:,} bytes")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise PromptFileError(filename, f"line {line} (byte {exc.start})", None, "the file is not UTF-8 text") from None
    try:
        return parse_csv(text, filename) if suffix == ".csv" else parse_json(text, filename)
    except PromptFileError:
        raise
    except Exception as exc:  # noqa: BLE001 - any other failure still names the file instead of escaping as a crash
        raise PromptFileError(filename, "file", None, f"cannot be read: {type(exc).__name__}: {exc}") from None


def read_prompt_file(path: str | Path) -> list[PromptRecord]:
    return parse_prompt_bytes(read_prompt_bytes(path), str(path))


def read_prompt_bytes(path: str | Path) -> bytes:
    """The bytes of a prompt file, refused (``PromptFileError``) when missing, unreadable or over the size limit."""
    path = Path(path)
    if not path.is_file():
        raise PromptFileError(str(path), "file", None, "no such file" if not path.exists() else "not a regular file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_PROMPT_FILE_BYTES + 1)
    except OSError as exc:
        raise PromptFileError(str(path), "file", None, f"cannot be read: {exc.strerror or exc}") from None
    if len(data) > MAX_PROMPT_FILE_BYTES:
        raise PromptFileError(str(path), "file", None, f"larger than the limit of {MAX_PROMPT_FILE_BYTES:,} bytes")
    return data
