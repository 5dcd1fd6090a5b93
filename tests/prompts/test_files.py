import json
from pathlib import Path

import pytest

from aesthetic_platform.prompts import PromptBatchConfig, PromptFileError, build_prompt_batch
from aesthetic_platform.prompts.files import parse_prompt_bytes, read_prompt_file


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_import_with_optional_columns(tmp_path):
    path = write(
        tmp_path, "p.csv",
        "text,language,palette,layout\n"
        "\"A poster of a red lantern, centered composition\",en,red|gold,centered\n"
        "一张蓝色与白色的海报，居中构图,,,\n",
    )
    records = read_prompt_file(path)
    assert [r.palette for r in records] == [["red", "gold"], []]
    specs = build_prompt_batch("b1", PromptBatchConfig(source="file", file_path=str(path)))
    assert specs[0].palette == ["red", "gold"] and specs[0].layout == "centered"
    assert specs[1].language == "zh"
    assert set(specs[1].palette) == {"blue", "white"}  # read from the text
    assert {s.source for s in specs} == {"file"}


def test_json_import_list_object_and_strings(tmp_path):
    path = write(tmp_path, "p.json", json.dumps({"prompts": [{"text": "teal and orange poster", "slogan": "Go"}, "a plain string prompt"]}))
    records = read_prompt_file(path)
    assert [r.text for r in records] == ["teal and orange poster", "a plain string prompt"]


def test_duplicates_are_removed_by_normalized_text(tmp_path):
    path = write(tmp_path, "p.json", json.dumps(["A red poster", "  a RED   poster! ", "A blue poster"]))
    specs = build_prompt_batch("b1", PromptBatchConfig(source="file", file_path=str(path)))
    assert [s.text for s in specs] == ["A red poster", "A blue poster"]


@pytest.mark.parametrize(
    ("name", "content", "location", "field", "problem"),
    [
        ("a.csv", "text,palette\nfine,red\n,blue\n", "line 3", "text", "at least 1 character"),
        ("b.csv", "text,colour\nx,red\n", "line 1", "colour", "unknown column"),
        ("c.csv", "palette\nred\n", "line 1", "text", "missing required column"),
        ("d.csv", "text,palette\nx,mauve\n", "line 2", "palette", "unknown colour"),
        ("e.csv", "text\nx,y\n", "line 2", None, "2 values for 1 columns"),
        ("f.json", '[{"text": "ok"}, {"text": 5}]', "record 2", "text", "valid string"),
        ("g.json", '[{"text": "ok"}, {"txt": "typo"}]', "record 2", "txt", "unknown field"),
        ("h.json", '[{"text": "ok"},\n {"text": }]', "line 2", None, "invalid JSON"),
        ("i.json", '{"items": []}', "top level", None, "expected a list"),
        ("j.json", '[{"text": "ok", "language": "fr"}]', "record 1", "language", "'zh' or 'en'"),
        ("k.csv", "", "line 1", None, "empty"),
    ],
)
def test_malformed_files_name_file_location_and_field(tmp_path, name, content, location, field, problem):
    path = write(tmp_path, name, content)
    with pytest.raises(PromptFileError) as err:
        read_prompt_file(path)
    message = str(err.value)
    assert str(path) in message
    assert location in message
    if field:
        assert f"field '{field}'" in message
    assert problem in message


def test_unsupported_extension_and_binary():
    with pytest.raises(PromptFileError, match="unsupported extension"):
        parse_prompt_bytes(b"text\nx\n", "prompts.xlsx")
    with pytest.raises(PromptFileError, match="not UTF-8"):
        parse_prompt_bytes(b"\xff\xfe\x00bad", "p.csv")


def test_file_source_needs_a_path():
    with pytest.raises(ValueError, match="file_path"):
        build_prompt_batch("b1", PromptBatchConfig(source="file"))
