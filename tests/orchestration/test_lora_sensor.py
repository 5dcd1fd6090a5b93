"""Finished web uploads become lora_upload partitions, recorded in Dagster with the folder's own settings."""

from __future__ import annotations

import json

import dagster as dg
import pytest

from aesthetic_platform.lora.config import LoraConfig
from aesthetic_platform.lora.pipeline import build, set_state
from tests.fixtures.lora_photos import SMALL_CROP, photo_zip


@pytest.mark.slow
def test_a_finished_upload_is_registered_once_and_its_run_recomputes_nothing(tmp_path):
    from aesthetic_platform.assets.lora import LORA_ASSETS, LoraPackageConfig, lora_upload
    from aesthetic_platform.jobs.lora import lora_uploads_sensor, stored_run_config
    from aesthetic_platform.resources import DataRootResource

    home = tmp_path / "home"
    settings = LoraConfig.model_validate({
        "dedup": {"analysis_side": 256}, "crop": SMALL_CROP,
        "caption": {"trigger": "zxq"}, "package": {"trigger": "zxq", "class_word": "woman", "repeats": 7},
    })
    build(photo_zip(tmp_path / "photos.zip"), home / "lora" / "web-1", settings)  # as the web app does, state "done"
    build(photo_zip(tmp_path / "other.zip"), home / "lora" / "web-2", settings)
    set_state(home / "lora" / "web-2", "running")  # still being built: not yet
    (home / "lora" / "-bad name").mkdir()
    broken = home / "lora" / "web-3"  # finished, but its stored config no longer validates
    broken.mkdir()
    (broken / "job.json").write_text(json.dumps({"job_id": "web-3", "state": "done", "config": {"package": {"repeats": 0}}}))
    damaged = home / "lora" / "web-4"  # a job.json cut off mid-write by a crash: it must not hide web-1
    damaged.mkdir()
    (damaged / "job.json").write_text('{"job_id": "web-4", "sta')
    resources = {"data_root": DataRootResource(home=str(home))}

    with dg.instance_for_test() as instance:
        result = lora_uploads_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, dg.SensorResult)
        (request,) = result.run_requests
        assert request.partition_key == "web-1"
        assert request.run_config["ops"]["lora_package"]["config"]["repeats"] == 7  # the folder's settings, not defaults
        typed = stored_run_config(home / "lora" / "web-1").ops["lora_package"]
        assert isinstance(typed, LoraPackageConfig) and typed.class_word == "woman"  # the launchpad class, validated
        with pytest.raises(ValueError, match="package.repeats"):
            stored_run_config(broken)  # the field is named, and the sensor leaves web-3 unregistered instead of queueing a doomed run
        (add,) = result.dynamic_partitions_requests
        assert list(add.partition_keys) == ["web-1"]
        instance.add_dynamic_partitions(lora_upload.name, list(add.partition_keys))

        run = dg.materialize(LORA_ASSETS, partition_key="web-1", instance=instance, resources=resources, run_config=request.run_config)
        assert run.success
        for asset in ("lora_ingest", "lora_dedup", "lora_crops", "lora_captions", "lora_package"):
            (materialization,) = run.asset_materializations_for_node(asset)
            assert materialization.metadata["recomputed"].value is False, asset
        assert (home / "lora" / "web-1" / "dataset" / "7_zxq woman").is_dir()

        again = lora_uploads_sensor(dg.build_sensor_context(instance=instance, resources=resources))
        assert isinstance(again, dg.SkipReason)
