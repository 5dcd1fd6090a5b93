import json
import os
import threading
from pathlib import Path

import polars as pl
import pytest

from aesthetic_platform.atomic import append_jsonl, read_jsonl, write_bytes, write_with
from aesthetic_platform.paths import DataRoot, check_key
from aesthetic_platform.schemas import CANDIDATE_IMAGES, JUDGMENTS, PROMPTS, PromptSpec
from aesthetic_platform.tables import SchemaError


def _spec(i: int = 0, **kw) -> PromptSpec:
    values = dict(
        prompt_id=f"p{i:015d}", batch="b1", text=f"poster {i}", text_hash=f"{i:064d}",
        language="en", palette=["red"], source="grammar",
    )
    values.update(kw)
    return PromptSpec(**values)


def test_table_round_trip_keeps_schema(tmp_path: Path):
    path = PROMPTS.write([_spec(0), _spec(1)], tmp_path / "prompts.parquet")
    frame = PROMPTS.read(path)
    assert frame.columns == PROMPTS.columns
    assert frame.schema["palette"] == pl.List(pl.String)
    assert [r.prompt_id for r in PROMPTS.rows(frame)] == [_spec(0).prompt_id, _spec(1).prompt_id]
    # a plain reader needs nothing but polars
    assert pl.read_parquet(path).height == 2


def test_table_rejects_bad_rows_before_writing(tmp_path: Path):
    target = tmp_path / "prompts.parquet"
    PROMPTS.write([_spec(0)], target)
    before = target.read_bytes()
    with pytest.raises(SchemaError, match="row 1"):
        PROMPTS.write([_spec(0).model_dump(), {"prompt_id": "x"}], target)
    assert target.read_bytes() == before


def test_table_read_names_wrong_columns(tmp_path: Path):
    path = tmp_path / "bad.parquet"
    pl.DataFrame({"prompt_id": [1], "batch": ["b"]}).write_parquet(path)
    with pytest.raises(SchemaError) as err:
        PROMPTS.read(path)
    message = str(err.value)
    assert "column 'prompt_id' is Int64, expected String" in message
    assert "missing column 'text'" in message
    assert str(path) in message


def test_empty_table_has_all_columns():
    assert CANDIDATE_IMAGES.frame([]).columns == CANDIDATE_IMAGES.columns


def test_an_empty_table_with_nested_columns_is_written_and_read_back(tmp_path: Path):
    """A batch whose every candidate was excluded still writes its (empty) judgments table."""
    assert any(dtype is None for dtype in JUDGMENTS.dtypes.values()), "the table has a nested column"
    path = JUDGMENTS.write([], tmp_path / "judgments.parquet")
    frame = JUDGMENTS.read(path)
    assert frame.height == 0 and frame.columns == JUDGMENTS.columns


def test_atomic_write_leaves_old_file_on_failure(tmp_path: Path):
    target = write_bytes(tmp_path / "f.bin", b"old")

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_with(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_jsonl_appends_concurrently_and_skips_torn_tail(tmp_path: Path):
    log = tmp_path / "log.jsonl"
    threads = [
        threading.Thread(target=lambda i=i: [append_jsonl(log, {"i": i, "k": k, "pad": "x" * 500}) for k in range(25)]) for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    records = read_jsonl(log)
    assert len(records) == 200
    assert all(json.loads(line) for line in log.read_text().splitlines())
    with open(log, "a") as handle:  # a crash mid-append leaves a torn line
        handle.write('{"i": 99, "k"')
    assert len(read_jsonl(log)) == 200


def test_jsonl_corruption_in_the_middle_is_an_error(tmp_path: Path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(log)


def test_keys_are_checked():
    assert check_key("batch", "demo-0001") == "demo-0001"
    for bad in ["../x", "", "a/b", ".hidden", "x" * 200]:
        with pytest.raises(ValueError, match="invalid batch"):
            check_key("batch", bad)


def test_data_root_honours_env(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("AESTHETIC_HOME", str(tmp_path / "h"))
    root = DataRoot.from_env().ensure()
    assert root.root == (tmp_path / "h").resolve()
    assert root.table("prompts", "b1") == root.root / "tables" / "prompts" / "b1.parquet"
    assert os.path.isdir(root.dagster_home)


def test_character_suite_and_judge_report_folders_come_from_the_data_root(tmp_path: Path):
    root = DataRoot(tmp_path)
    run = "0b6c6f5e-1d2a-4a8e-9c1b-2f0e3d4c5b6a"  # a Dagster run id
    assert root.character_run("classifiers", run) == tmp_path / "characters" / "classifiers" / run
    assert root.character_run("classifiers", run).parent == root.character_classifiers
    assert root.character_run("generators", run) == tmp_path / "characters" / "generators" / run
    assert root.rendered_character_dataset("0123456789ab") == tmp_path / "characters" / "datasets" / "rendered-0123456789ab"
    assert root.unseen_character_renders.parent == root.fusion_renders.parent == root.characters
    assert root.judge_calibration == tmp_path / "reports" / "judge_calibration.md"
    with pytest.raises(ValueError, match="unknown character run kind 'models'"):
        root.character_run("models", run)  # type: ignore[arg-type]
    for bad in ("../escape", "a/b"):
        with pytest.raises(ValueError, match="invalid run id"):
            root.character_run("fusion", bad)
        with pytest.raises(ValueError, match="invalid render key"):
            root.rendered_character_dataset(bad)
