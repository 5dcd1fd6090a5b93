"""The lora_dataset asset group: one partition per upload; a changed setting recomputes only what depends on it."""

from __future__ import annotations

import dagster as dg
import pytest

from aesthetic_platform.lora.tables import MANIFEST_RECORDS
from tests.fixtures.lora_photos import SMALL_CROP, photo_zip

STAGE_FILES = {
    "lora_ingest": "ingest.parquet",
    "lora_dedup": "dedup.parquet",
    "lora_crops": "crops.parquet",
    "lora_captions": "captions.parquet",
    "lora_package": "manifest.parquet",
}


def _recomputed(result: dg.ExecuteInProcessResult) -> dict[str, bool]:
    return {name: result.asset_materializations_for_node(name)[0].metadata["recomputed"].value for name in STAGE_FILES}


def _mtimes(work_dir) -> dict[str, int]:
    return {name: (work_dir / file).stat().st_mtime_ns for name, file in STAGE_FILES.items()}


@pytest.mark.slow
def test_lora_assets_build_a_partition_and_rerun_only_what_a_change_touches(tmp_path):
    from aesthetic_platform.assets.lora import LORA_ASSETS, lora_upload
    from aesthetic_platform.resources import DataRootResource

    home = tmp_path / "home"
    archive = photo_zip(tmp_path / "photos.zip")
    resources = {"data_root": DataRootResource(home=str(home))}
    ops = {
        "lora_ingest": {"config": {"source": str(archive)}},
        "lora_dedup": {"config": {"analysis_side": 256}},
        "lora_crops": {"config": SMALL_CROP},
        "lora_captions": {"config": {"trigger": "zxq"}},
        "lora_package": {"config": {"trigger": "zxq", "class_word": "woman"}},
    }
    work_dir = home / "lora" / "up-1"

    def materialize(config: dict) -> dg.ExecuteInProcessResult:
        result = dg.materialize(LORA_ASSETS, partition_key="up-1", instance=instance, resources=resources, run_config={"ops": config})
        assert result.success
        return result

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(lora_upload.name, ["up-1"])
        first = materialize(ops)
        assert all(_recomputed(first).values())
        meta = {name: first.asset_materializations_for_node(name)[0].metadata for name in STAGE_FILES}
        assert meta["lora_ingest"]["kept"].value == 6 and meta["lora_ingest"]["skipped"].value == 1
        assert meta["lora_dedup"]["dropped_by_stage"].value == {"near": 2}
        assert meta["lora_package"]["categories"].value == {"dedup:near": 2, "ingest:skipped": 1, "kept": 4}
        assert meta["lora_package"]["preview"].value.startswith("![preview](data:image/png;base64,")
        assert meta["lora_package"]["dagster/row_count"].value == 7
        assert (work_dir / "dataset" / "10_zxq woman").is_dir()
        versions = {
            name: instance.get_latest_materialization_event(dg.AssetKey(name)).asset_materialization.tags["dagster/data_version"]
            for name in STAGE_FILES
        }
        assert versions["lora_dedup"] == meta["lora_dedup"]["fingerprint"].value

        # a crop setting: ingest and dedup stay as they are (files untouched), crops/captions/package are recomputed
        before = _mtimes(work_dir)
        cropped = materialize({**ops, "lora_crops": {"config": {**SMALL_CROP, "output_size": 80}}})
        assert _recomputed(cropped) == {
            "lora_ingest": False, "lora_dedup": False, "lora_crops": True, "lora_captions": True, "lora_package": True,
        }
        after = _mtimes(work_dir)
        assert after["lora_ingest"] == before["lora_ingest"] and after["lora_dedup"] == before["lora_dedup"]
        assert all(after[n] != before[n] for n in ("lora_crops", "lora_captions", "lora_package"))

        # a dedup threshold: everything from dedup on is recomputed, ingest is not; the result follows the setting
        unmirrored = {**ops, "lora_crops": {"config": {**SMALL_CROP, "output_size": 80}},
                  "lora_dedup": {"config": {"analysis_side": 256, "hash_mirrored": False}}}
        rerun = materialize(unmirrored)
        assert _recomputed(rerun) == {
            "lora_ingest": False, "lora_dedup": True, "lora_crops": True, "lora_captions": True, "lora_package": True,
        }
        assert _mtimes(work_dir)["lora_ingest"] == before["lora_ingest"]
        manifest = MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(work_dir / "manifest.parquet"))
        kept = [r for r in manifest if r.status == "kept"]
        assert len(kept) == 5  # the mirrored copy is no longer a near duplicate once mirrors are not compared
        assert instance.get_latest_materialization_event(dg.AssetKey("lora_dedup")).asset_materialization.tags[
            "dagster/data_version"] != versions["lora_dedup"]


def test_an_upload_without_input_fails_with_a_clear_message(tmp_path):
    from aesthetic_platform.assets.lora import lora_ingest, lora_upload
    from aesthetic_platform.resources import DataRootResource

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(lora_upload.name, ["empty"])
        result = dg.materialize([lora_ingest], partition_key="empty", instance=instance, raise_on_error=False,
                                resources={"data_root": DataRootResource(home=str(tmp_path / "home"))})
    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert "partition 'empty' has no input yet: set `source` to a ZIP or folder" in str(failure.message) + str(failure.cause)
