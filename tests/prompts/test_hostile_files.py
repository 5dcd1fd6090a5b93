"""Prompt files made to break the reader: every failure is a PromptFileError naming file, place and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aesthetic_platform.prompts import PromptFileError
from aesthetic_platform.prompts.files import MAX_PROMPT_FILE_BYTES, parse_prompt_bytes, read_prompt_file
from aesthetic_platform.prompts.records import MAX_PROMPT_CHARS

HOSTILE = [
    # name, content, location, field, problem
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "top level", None, "nested too deeply"),
    ("deep-object.json", b'{"prompts": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001, "top level", None, "nested too deeply"),
    ("huge-text.csv", b'text\nok\n"' + b"x" * 200_000 + b'"\n', "line 3", "text", "longer than 131,072 characters"),
    ("huge-style.csv", b"text,style\nok," + b"s" * 200_000 + b"\n", "line 2", "style", "longer than 131,072 characters"),
    ("huge-multiline.csv", b'text,style\n"a\nb",x\n"c\nd' + b"z" * 200_000 + b'",q\n', "line 4", "text", "131,072"),
    ("huge-header.csv", b"text," + b"h" * 200_000 + b"\nfoo\n", "line 1", "column 2", "131,072"),
    ("big-int.json", b"[" + b"7" * 5000 + b"]", "top level", None, "invalid JSON"),
    ("latin1.csv", "text\nok\naffiche café\n".encode("latin-1"), "line 3 (byte 19)", None, "not UTF-8"),
    ("utf16.json", json.dumps(["a poster"]).encode("utf-16"), "line 1 (byte 0)", None, "not UTF-8"),
    ("nul.csv", b"text\nab\x00c\n", "line 2", "text", "control character U+0000"),
    ("escape.json", json.dumps(["red \x1b[31m poster"]).encode(), "record 1", "text", "control character U+001B"),
    ("blank.csv", b"text,style\n   ,flat\n", "line 2", "text", "at least 1 character"),
    ("blank.json", json.dumps(["ok", " \t "]).encode(), "record 2", "text", "at least 1 character"),
    ("too-long.json", json.dumps([{"text": "y" * (MAX_PROMPT_CHARS + 1)}]).encode(), "record 1", "text", "at most 2000 characters"),
    ("null-text.json", b'[{"text": null}]', "record 1", "text", "valid string"),
    ("nested-text.json", b'[{"text": ' + b"[" * 500 + b"]" * 500 + b"}]", "record 1", "text", "valid string"),
]


@pytest.mark.parametrize(("name", "content", "location", "field", "problem"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_file_names_file_location_field_and_problem(tmp_path, name, content, location, field, problem):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PromptFileError) as refused:
        read_prompt_file(path)
    error = refused.value
    assert isinstance(error, ValueError)
    assert error.source == str(path) and error.location == location and error.field == field, str(error)
    assert problem in str(error)
    assert len(str(error)) < 600  # a 200,000-character value is never echoed back


def test_a_prompt_of_exactly_the_limit_is_accepted_and_one_more_is_refused():
    (record,) = parse_prompt_bytes(json.dumps(["z" * MAX_PROMPT_CHARS]).encode(), "edge.json")
    assert len(record.text) == MAX_PROMPT_CHARS  # kept whole, not cut
    with pytest.raises(PromptFileError, match="at most 2000 characters"):
        parse_prompt_bytes(json.dumps(["z" * (MAX_PROMPT_CHARS + 1)]).encode(), "edge.json")


def test_tabs_and_newlines_inside_a_prompt_are_kept():
    (record,) = parse_prompt_bytes(b'text\n"a red poster\twith\na slogan"\n', "ok.csv")
    assert record.text == "a red poster\twith\na slogan"


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path):
    path = tmp_path / "huge.csv"
    with path.open("wb") as handle:  # sparse: costs no disk
        handle.write(b"text\n")
        handle.truncate(MAX_PROMPT_FILE_BYTES + 1)
    with pytest.raises(PromptFileError, match="larger than the limit"):
        read_prompt_file(path)
    with pytest.raises(PromptFileError, match="the limit is"):
        parse_prompt_bytes(b"text\n" + b"a" * MAX_PROMPT_FILE_BYTES, "huge.csv")


def test_a_folder_and_a_missing_file_are_named(tmp_path):
    with pytest.raises(PromptFileError, match="not a regular file"):
        read_prompt_file(tmp_path)
    with pytest.raises(PromptFileError, match="no such file"):
        read_prompt_file(Path(tmp_path / "absent.json"))


def test_any_unexpected_failure_inside_the_parser_still_names_the_file(monkeypatch):
    import aesthetic_platform.prompts.files as files

    def explode(text, source):
        raise MemoryError("out of memory while parsing")

    monkeypatch.setattr(files, "parse_json", explode)
    with pytest.raises(PromptFileError) as refused:
        parse_prompt_bytes(b'["a poster"]', "odd.json")
    assert "odd.json" in str(refused.value) and "MemoryError" in str(refused.value)
