import hashlib
import json
import os
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.tags import RUN_KEY_TAG
from dagster._core.test_utils import create_run_for_test

from aesthetic_platform.jobs.inbox import prompt_inbox_sensor
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts.inbox import batch_key_for, drain_inbox, error_note_name
from aesthetic_platform.resources import DataRootResource


def test_inbox_file_becomes_a_batch_run(tmp_path):
    root = DataRoot(tmp_path).ensure()
    (root.inbox / "spring campaign.json").write_text(json.dumps(["A red poster", "A teal and orange poster"]))
    (root.inbox / "broken.csv").write_text("text,colour\nx,red\n")
    (root.inbox / "notes.txt").write_text("ignored")
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"data_root": DataRootResource(home=str(tmp_path))})
        result = prompt_inbox_sensor(context)
    assert isinstance(result, dg.SensorResult)
    (request,) = result.run_requests
    (add,) = result.dynamic_partitions_requests
    assert add.partition_keys == [request.partition_key]
    assert request.partition_key.startswith("spring-campaign-")
    upload = request.run_config["ops"]["prompts"]["config"]["file_path"]
    assert json.loads(open(upload).read()) == ["A red poster", "A teal and orange poster"]
    assert sorted(p.name for p in root.inbox.iterdir()) == ["notes.txt", "pending", "rejected"]
    error = (root.inbox / "rejected" / "broken.csv.error.txt").read_text()
    assert "line 1" in error and "colour" in error


def test_empty_inbox_skips(tmp_path):
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"data_root": DataRootResource(home=str(tmp_path))})
        result = prompt_inbox_sensor(context)
    assert isinstance(result, dg.SkipReason)


def test_same_content_same_batch_key(tmp_path):
    root = DataRoot(tmp_path).ensure()
    (root.inbox / "a.csv").write_text("text\nA blue poster\n")
    first, _ = drain_inbox(root)
    (root.inbox / "a.csv").write_text("text\nA blue poster\n")
    second, _ = drain_inbox(root)
    assert first[0].batch == second[0].batch


# --- hostile files next to good ones ------------------------------------------------------------

GOOD = {
    "spring.json": json.dumps(["A red poster", "A teal and orange poster"]).encode(),
    "autumn.csv": "text,palette\nA gold lantern poster,gold|red\n一张蓝色与白色的海报，居中构图,\n".encode(),
    "winter.json": json.dumps({"prompts": [{"text": "A snowy mountain poster", "layout": "centered"}]}).encode(),
}
HOSTILE = {
    "deep.json": b"[" * 100_000 + b"]" * 100_000,
    "huge-field.csv": b'text\nfine\n"' + b"x" * 200_000 + b'"\n',
    "latin1.csv": "text\ncaf\u00e9 poster\n".encode("latin-1"),
    "empty-list.json": b"[]",
    "blank.csv": b"text\n   \n",
    "too-long.json": json.dumps(["y" * 2001]).encode(),
    "big-int.json": b"[" + b"1" * 5000 + b"]",
    "nul.csv": b"text\nab\x00c\n",
    "unknown-column.csv": b"text,colour\nx,red\n",
    "empty.csv": b"",
}


def _drop(root: DataRoot, files: dict[str, bytes], first_mtime: float) -> None:
    for offset, (name, data) in enumerate(files.items()):
        path = root.inbox / name
        path.write_bytes(data)
        os.utime(path, (first_mtime + offset, first_mtime + offset))


def _tick(instance, home: Path):
    context = dg.build_sensor_context(instance=instance, resources={"data_root": DataRootResource(home=str(home))})
    return prompt_inbox_sensor(context)


def _expected_batch(name: str, data: bytes) -> str:
    return batch_key_for(Path(name), hashlib.sha256(data).hexdigest())


def test_good_and_hostile_files_together_every_good_file_becomes_a_run_request(tmp_path):
    root = DataRoot(tmp_path).ensure()
    _drop(root, HOSTILE, first_mtime=1_000_000)  # the hostile files are older: they are handled first
    _drop(root, GOOD, first_mtime=2_000_000)
    (root.inbox / "folder.csv").mkdir()
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
    assert isinstance(result, dg.SensorResult)
    requested = {request.partition_key: request for request in result.run_requests}
    assert set(requested) == {_expected_batch(name, data) for name, data in GOOD.items()}
    for name, data in GOOD.items():
        request = requested[_expected_batch(name, data)]
        assert request.run_key == request.partition_key
        assert Path(request.run_config["ops"]["prompts"]["config"]["file_path"]).read_bytes() == data
    (add,) = result.dynamic_partitions_requests
    assert set(add.partition_keys) == set(requested)
    for name in HOSTILE:
        assert (root.inbox_rejected / name).is_file(), name
        error = (root.inbox_rejected / f"{name}.error.txt").read_text()
        assert name in error, error
    assert "nested too deeply" in (root.inbox_rejected / "deep.json.error.txt").read_text()
    assert "field 'text'" in (root.inbox_rejected / "huge-field.csv.error.txt").read_text()
    assert "not UTF-8" in (root.inbox_rejected / "latin1.csv.error.txt").read_text()
    assert sorted(p.name for p in root.inbox.iterdir()) == ["folder.csv", "pending", "rejected"]


def test_any_exception_while_reading_one_file_rejects_only_that_file(tmp_path, monkeypatch):
    import aesthetic_platform.prompts.inbox as inbox

    real_parse = inbox.parse_prompt_bytes

    def parse(data: bytes, filename: str):
        if filename.endswith("cursed.json"):
            raise RuntimeError("parser blew up")
        return real_parse(data, filename)

    monkeypatch.setattr(inbox, "parse_prompt_bytes", parse)
    root = DataRoot(tmp_path).ensure()
    _drop(root, {"cursed.json": b'["a poster"]', **GOOD}, first_mtime=1_000_000)
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
    assert len(result.run_requests) == len(GOOD)
    error = (root.inbox_rejected / "cursed.json.error.txt").read_text()
    assert "RuntimeError" in error and "parser blew up" in error


class _Crash(BaseException):
    """Stands for the process dying: nothing catches it."""


def test_a_crash_at_any_point_loses_no_accepted_file(tmp_path, monkeypatch):
    import aesthetic_platform.prompts.inbox as inbox

    root = DataRoot(tmp_path).ensure()
    _drop(root, GOOD, first_mtime=1_000_000)
    expected = {_expected_batch(name, data) for name, data in GOOD.items()}

    def crash(*_args, **_kwargs):
        raise _Crash

    # 1. killed after the first upload copy is written, before its file moves to pending/
    monkeypatch.setattr(inbox.os, "replace", crash)
    with dg.instance_for_test() as instance:
        with pytest.raises(_Crash):
            _tick(instance, tmp_path)
        monkeypatch.undo()
        assert sorted(p.name for p in root.inbox.iterdir() if p.is_file()) == sorted(GOOD)

        # 2. the next pass requests every run, but the process dies before Dagster creates them
        first = _tick(instance, tmp_path)
        assert {r.run_key for r in first.run_requests} == expected
        assert not [p for p in root.inbox.iterdir() if p.is_file()]
        assert len(list(root.inbox_pending.iterdir())) == len(GOOD)

        # 3. so the pass after asks again, with the same run keys and the same files
        again = _tick(instance, tmp_path)
        assert {(r.run_key, str(r.run_config)) for r in again.run_requests} == {
            (r.run_key, str(r.run_config)) for r in first.run_requests
        }

        # 4. once the runs exist, the files leave the inbox; the upload copies stay for the runs
        for request in again.run_requests:
            create_run_for_test(instance, job_name="judging_chain", tags={**request.tags, RUN_KEY_TAG: request.run_key})
        done = _tick(instance, tmp_path)
    assert isinstance(done, dg.SkipReason)
    assert list(root.inbox_pending.iterdir()) == []
    assert sorted(p.stem for p in root.uploads.iterdir()) == sorted(expected)


def test_a_lost_upload_copy_is_written_again_from_the_pending_file(tmp_path):
    root = DataRoot(tmp_path).ensure()
    _drop(root, {"spring.json": GOOD["spring.json"]}, first_mtime=1_000_000)
    with dg.instance_for_test() as instance:
        (request,) = _tick(instance, tmp_path).run_requests
        upload = Path(request.run_config["ops"]["prompts"]["config"]["file_path"])
        upload.unlink()
        (again,) = _tick(instance, tmp_path).run_requests
    assert again.run_key == request.run_key
    assert upload.read_bytes() == GOOD["spring.json"]


def test_a_bad_file_with_a_very_long_name_is_still_rejected_with_its_note(tmp_path):
    root = DataRoot(tmp_path).ensure()
    name = "n" * 240 + ".json"
    (root.inbox / name).write_bytes(b"[")
    _drop(root, {"spring.json": GOOD["spring.json"]}, first_mtime=2_000_000)
    with dg.instance_for_test() as instance:
        result = _tick(instance, tmp_path)
    assert len(result.run_requests) == 1
    assert (root.inbox_rejected / name).is_file()
    (note,) = root.inbox_rejected.glob("*.error.txt")
    assert note.name == error_note_name(name) and len(note.name.encode()) < 220
    assert "invalid JSON" in note.read_text()
