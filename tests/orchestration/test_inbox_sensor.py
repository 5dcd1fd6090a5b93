import json

import dagster as dg

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts.inbox import drain_inbox
from aesthetic_platform.jobs.inbox import prompt_inbox_sensor
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
    assert sorted(p.name for p in root.inbox.iterdir()) == ["notes.txt", "rejected"]
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
