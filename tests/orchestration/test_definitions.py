"""The Dagster layer: definitions load, assets materialize in-process, backfills run."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from aesthetic_platform.assets import candidate_images, prompts
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.definitions import contiguous_ranges, defs, materialize_batches
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, ImageGeneratorResource, PromptLLMResource, resources_for

REPO = Path(__file__).resolve().parents[2]
SMALL = {"ops": {"prompts": {"config": {"count": 3}}, "candidate_images": {"config": {"per_prompt": 3, "pixel_budget": 48 * 48}}}}


def test_definitions_validate():
    dg.Definitions.validate_loadable(defs)
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} >= {"prompts", "candidate_images"}


def test_every_materializable_asset_has_a_code_version():
    graph = defs.resolve_asset_graph()
    missing = sorted(
        key.to_user_string() for key in graph.get_all_asset_keys()
        if graph.get(key).is_materializable and not graph.get(key).code_version
    )
    assert missing == []


@pytest.mark.slow
def test_embedding_assets_report_each_partitions_rows_and_the_store_schema(tmp_path):
    from aesthetic_platform.assets.embeddings import image_embeddings, prompt_embeddings
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer
    from aesthetic_platform.resources import EmbeddingStoreResource

    checkpoint = tmp_path / "student"
    AestheticScorer(named_config("tiny")).save_pretrained(checkpoint)
    resources = {**_resources(tmp_path / "home"), "embedding_store": EmbeddingStoreResource(db_url=f"sqlite:///{tmp_path / 'store.db'}")}
    chain = {"ops": {
        "prompts": {"config": {"count": 2}},
        "candidate_images": {"config": {"per_prompt": 1, "ratios_per_prompt": 1, "pixel_budget": 32 * 32}},
        "image_embeddings": {"config": {"model_path": str(checkpoint), "device": "cpu"}},
        "prompt_embeddings": {"config": {"device": "cpu"}},
    }}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["e1", "e2"])
        run = dg.materialize(
            [prompts, candidate_images, image_embeddings, prompt_embeddings], instance=instance, resources=resources, run_config=chain,
            tags={"dagster/asset_partition_range_start": "e1", "dagster/asset_partition_range_end": "e2"},
        )
        assert run.success
        for asset, per_batch in (("image_embeddings", 2), ("prompt_embeddings", 2)):
            observed = {
                e.event_specific_data.asset_observation.partition: e.event_specific_data.asset_observation.metadata
                for e in run.all_events if e.event_type_value == "ASSET_OBSERVATION"
                and e.event_specific_data.asset_observation.asset_key.to_user_string() == asset
            }
            assert {batch: md["dagster/row_count"].value for batch, md in observed.items()} == {"e1": per_batch, "e2": per_batch}
            (materialization, *_) = run.asset_materializations_for_node(asset)
            assert materialization.metadata["run_rows"].value == 2 * per_batch
            columns = [c.name for c in materialization.metadata["dagster/column_schema"].value.columns]
            assert columns == ["model_id", "sha256", "vector", "created_at"]
        single = dg.materialize([prompt_embeddings], partition_key="e1", instance=instance, resources=resources,
                                run_config={"ops": {"prompt_embeddings": chain["ops"]["prompt_embeddings"]}})
        assert single.asset_materializations_for_node("prompt_embeddings")[0].metadata["dagster/row_count"].value == 2


def test_importing_the_core_does_not_load_dagster():
    code = "import aesthetic_platform.cli, aesthetic_platform.generation, aesthetic_platform.prompts, sys; print('dagster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _resources(home: Path) -> dict:
    return {"data_root": DataRootResource(home=str(home)), "image_generator": ImageGeneratorResource(), "prompt_llm": PromptLLMResource()}


def test_materialize_dynamic_partition_in_process(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["batch-a"])
        result = dg.materialize(
            [prompts, candidate_images], partition_key="batch-a", instance=instance,
            resources=_resources(tmp_path), run_config=SMALL,
        )
        assert result.success
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "prompts_non_empty": True, "prompts_unique_ids": True, "prompts_no_duplicate_text": True,
            "candidates_cover_ratios": True,
        }
        materialization = result.asset_materializations_for_node("candidate_images")[0]
        assert materialization.partition == "batch-a"
        assert materialization.metadata["images"].value == 18  # 3 prompts x 3 seeds x 2 ratios
        prompts_md = result.asset_materializations_for_node("prompts")[0].metadata
        assert prompts_md["table"].value == "tables/prompts"  # relative to the data root, so a moved root keeps it true
    manifest = pl.read_parquet(DataRoot(tmp_path).table("candidate_images", "batch-a"))
    assert manifest.height == 18
    assert set(manifest["ratio"]) == {"1:1", "3:4", "9:16", "4:3", "16:9"}


def test_rematerializing_reuses_images(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b"])
        for expected_generated in (18, 0):
            result = dg.materialize(
                [prompts, candidate_images], partition_key="b", instance=instance, resources=_resources(tmp_path), run_config=SMALL
            )
            metadata = result.asset_materializations_for_node("candidate_images")[0].metadata
            assert metadata["generated"].value == expected_generated


def test_backfill_of_several_partitions_in_one_run(tmp_path):
    root = DataRoot(tmp_path).ensure()
    with dg.instance_for_test() as instance:
        results = materialize_batches(root, ["b1", "b2", "b3"], run_config=SMALL, instance=instance)
        assert len(results) == 1 and results[0].success
        partitions = sorted(m.partition for m in results[0].asset_materializations_for_node("candidate_images"))
        assert partitions == ["b1", "b2", "b3"]
        # a non-contiguous selection becomes one run per contiguous range
        results = materialize_batches(root, ["b1", "b3", "b4"], run_config=SMALL, instance=instance)
        assert [sorted(m.partition for m in r.asset_materializations_for_node("prompts")) for r in results] == [["b1"], ["b3", "b4"]]
    for batch in ("b1", "b2", "b3", "b4"):
        assert root.table("candidate_images", batch).exists()


def test_contiguous_ranges():
    order = ["a", "b", "c", "d", "e"]
    assert contiguous_ranges(order, ["a", "b", "d"]) == [("a", "b"), ("d", "d")]
    assert contiguous_ranges(order, ["e", "c", "d"]) == [("c", "e")]


def test_bad_config_fails_with_a_clear_error(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b"])
        result = dg.materialize(
            [prompts], partition_key="b", instance=instance, resources=_resources(tmp_path),
            run_config={"ops": {"prompts": {"config": {"source": "file", "file_path": str(tmp_path / "missing.csv")}}}},
            raise_on_error=False,
        )
        assert not result.success
        failure = result.failure_data_for_node("prompts")
        assert "missing.csv" in str(failure.error) and "no such file" in str(failure.error)


def test_profiles():
    assert resources_for("local")["image_generator"].generator == "poster"
    with pytest.raises(ValueError, match="AESTHETIC_PROFILE"):
        import os

        os.environ["AESTHETIC_PROFILE"] = "staging"
        try:
            resources_for()
        finally:
            del os.environ["AESTHETIC_PROFILE"]
