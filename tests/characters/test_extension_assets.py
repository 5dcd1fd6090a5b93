"""character_prototypes, character_fusion and character_generator materialized in-process, after a character_classifier."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import ExtWorld, sqlite_url

ext_world = ext_fixtures.ext_world
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

TINY = {
    "character_prototypes": {"config": {"calibration_characters": 2, "novel_characters": 2, "unknown_test_characters": 2,
                                        "images_per_character": 7, "device": "cpu"}},
    "character_fusion": {"config": {"epochs": 20, "device": "cpu"}},
    "character_generator": {"config": {"image_size": 32, "noise_dim": 8, "class_embedding_dim": 4, "base_channels": 16,
                                       "disc_channels": 8, "epochs": 2, "batch_size": 8, "target_classes": "character_000,character_001",
                                       "samples_per_class": 2, "device": "cpu"}},
}


@pytest.mark.slow
def test_extension_assets_materialize_with_mlflow_runs_and_plots(ext_world: ExtWorld, tmp_path: Path) -> None:
    import mlflow

    from aesthetic_platform.assets.character_extensions import (
        CHARACTER_EXTENSION_ASSETS,
        CharacterGeneratorConfig,
        character_generator,
        character_prototypes,
    )
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
    from aesthetic_platform.paths import DataRoot
    from aesthetic_platform.resources import DataRootResource
    from aesthetic_platform.resources.embeddings import EmbeddingStoreResource
    from aesthetic_platform.resources.tracking import MLflowResource
    from aesthetic_platform.tracking import TrackingConfig

    home = tmp_path / "home"
    resources = {
        "data_root": DataRootResource(home=str(home)),
        "embedding_store": EmbeddingStoreResource(db_url=sqlite_url(tmp_path)),
        "mlflow_tracking": MLflowResource(),
    }
    assert {a.key.path[-1] for a in CHARACTER_EXTENSION_ASSETS} == {"character_prototypes", "character_fusion", "character_generator"}
    assert character_generator.op.pool == "gpu"
    assert {dep.path[-1] for dep in character_prototypes.asset_deps[character_prototypes.key]} == {"character_classifier"}
    assert "model_dir" in CharacterGeneratorConfig.model_fields and "perc_weight" in CharacterGeneratorConfig.model_fields

    with dg.instance_for_test() as instance:
        # no model_dir in the launchpad: the folder comes from character_classifier's latest materialization
        instance.report_runless_asset_event(
            dg.AssetMaterialization("character_classifier", metadata={"model_dir": dg.MetadataValue.path(str(ext_world.model_dir))})
        )
        result = dg.materialize(CHARACTER_EXTENSION_ASSETS, instance=instance, resources=resources, run_config={"ops": TINY})
        assert result.success
        meta = {name: result.asset_materializations_for_node(name)[0].metadata for name in TINY}

    prototypes = meta["character_prototypes"]
    assert prototypes["classes"].value == 8 and prototypes["weights_unchanged"].value is True
    assert prototypes["feature_model"].value.startswith("character-classifier@")
    for key in ("novel_accuracy", "unknown_rate", "known_accuracy"):
        assert "[" in prototypes[key].value  # value [low, high]
    assert "plot_similarity_histogram" in prototypes
    # per-class thresholds: the calibrated number is an offset, and the metadata says so
    assert "threshold_offset" in prototypes and "threshold" not in prototypes
    fusion = meta["character_fusion"]
    assert "fusion_accuracy" in fusion and "image_only_accuracy" in fusion and "plot_fusion_accuracy" in fusion
    generator = meta["character_generator"]
    assert len(generator["confidence_per_epoch"].value) == 2 and generator["perceptual_network"].value in {"classifier", "vgg16"}
    assert "plot_samples_last_epoch" in generator and "plot_generator_curves" in generator
    for name in TINY:
        assert meta[name]["mlflow_run"].value.endswith(meta[name]["mlflow_run_id"].value)
        assert Path(meta[name]["model_dir"].value) == ext_world.model_dir

    with Store.open(EmbeddingStoreConfig(db_url=sqlite_url(tmp_path))) as store:  # the set lives in the shared store
        assert any(m.model_id == prototypes["feature_model"].value for m in store.models())
    TrackingConfig.for_root(DataRoot.from_env(home)).activate()
    client = mlflow.MlflowClient()
    generator_run = client.get_run(generator["mlflow_run_id"].value)
    assert generator_run.data.params["perceptual_network"] == generator["perceptual_network"].value
    for term in ("adv", "cls", "perc", "d_loss", "confidence"):
        assert len(client.get_metric_history(generator_run.info.run_id, term)) >= 2  # per epoch, each term on its own key
    samples = [a.path for a in client.list_artifacts(generator_run.info.run_id, "samples")]
    assert samples == ["samples/samples_epoch_1.png", "samples/samples_epoch_2.png"]
    fusion_run = client.get_run(fusion["mlflow_run_id"].value)
    assert {"test_fusion_accuracy", "test_image_only_accuracy", "test_difference_ci_low"} <= set(fusion_run.data.metrics)
    prototype_run = client.get_run(prototypes["mlflow_run_id"].value)
    assert "novel_accuracy" in prototype_run.data.metrics and "calibration_threshold" in prototype_run.data.metrics
