"""character_prototypes, character_fusion and character_generator materialized in-process, in one run with the
character_dataset and character_classifier they take their classifier from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg
import pytest

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import sqlite_url

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# the same tiny world as tests.characters.ext_fixtures, rendered and trained by the assets themselves
UPSTREAM = {
    "character_dataset": {"config": {"characters": ext_fixtures.CHARACTERS, "images_per_character": ext_fixtures.IMAGES_PER_CHARACTER,
                                     "image_size": ext_fixtures.IMAGE_SIZE, "val_fraction": 0.2, "test_fraction": 0.2}},
    "character_classifier": {"config": {"model_name": "test_efficientnet", "image_size": ext_fixtures.IMAGE_SIZE, "epochs": 8,
                                        "batch_size": 16, "lr": 1e-2, "device": "cpu", "rotation_degrees": 5, "color_jitter": 0.05}},
}
TINY = {
    "character_prototypes": {"config": {"calibration_characters": 2, "novel_characters": 2, "unknown_test_characters": 2,
                                        "images_per_character": 7, "device": "cpu"}},
    "character_fusion": {"config": {"epochs": 20, "device": "cpu"}},
    "character_generator": {"config": {"image_size": 32, "noise_dim": 8, "class_embedding_dim": 4, "base_channels": 16,
                                       "disc_channels": 8, "epochs": 2, "batch_size": 8, "target_classes": "character_000,character_001",
                                       "samples_per_class": 2, "device": "cpu"}},
}


@pytest.mark.slow
def test_extension_assets_take_the_classifier_from_the_graph_with_mlflow_runs_and_plots(tmp_path: Path) -> None:
    import mlflow

    from aesthetic_platform.assets.character_extensions import (
        CHARACTER_EXTENSION_ASSETS,
        CharacterGeneratorConfig,
        character_generator,
        character_prototypes,
    )
    from aesthetic_platform.assets.characters import character_classifier, character_dataset
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
    from aesthetic_platform.paths import DataRoot
    from aesthetic_platform.resources import DataRootResource
    from aesthetic_platform.resources.embeddings import EmbeddingStoreResource
    from aesthetic_platform.resources.tracking import MLflowResource
    from aesthetic_platform.tracking import TrackingConfig

    home = tmp_path / "home"
    root = DataRoot.from_env(home)
    resources = {
        "data_root": DataRootResource(home=str(home)),
        "embedding_store": EmbeddingStoreResource(db_url=sqlite_url(tmp_path)),
        "mlflow_tracking": MLflowResource(),
    }
    assets = [character_dataset, character_classifier, *CHARACTER_EXTENSION_ASSETS]
    assert {a.key.path[-1] for a in CHARACTER_EXTENSION_ASSETS} == {"character_prototypes", "character_fusion", "character_generator"}
    assert character_generator.op.pool == "gpu"
    for asset in CHARACTER_EXTENSION_ASSETS:  # the classifier is an input (a record through the IO manager), not a bare dependency
        assert asset.keys_by_input_name == {"character_classifier": character_classifier.key}
        assert asset.code_versions_by_key[asset.key] == character_classifier.code_versions_by_key[character_classifier.key]
    assert "perc_weight" in CharacterGeneratorConfig.model_fields and "model_dir" not in CharacterGeneratorConfig.model_fields

    with dg.instance_for_test() as instance:
        result = dg.materialize(assets, instance=instance, resources=resources, run_config={**QUIET, "ops": {**UPSTREAM, **TINY}})
        assert result.success
        meta = {name: result.asset_materializations_for_node(name)[0].metadata for name in TINY}
        classifier = result.output_for_node("character_classifier")
        model_dir = classifier.path(root)
        assert model_dir.parent == root.character_classifiers and (model_dir / "model.safetensors").is_file()

        # A newer classifier folder on disk and a later materialization event that points at it change nothing:
        # prototypes alone still get the classifier record stored for character_classifier's output.
        decoy = root.character_run("classifiers", "decoy")
        shutil.copytree(model_dir, decoy)
        os.utime(decoy / "model.safetensors")
        instance.report_runless_asset_event(
            dg.AssetMaterialization("character_classifier", metadata={"model_dir": dg.MetadataValue.path(str(decoy))})
        )
        again = dg.materialize(assets, selection=[character_prototypes], instance=instance, resources=resources,
                               run_config={**QUIET, "ops": {"character_prototypes": TINY["character_prototypes"]}})
        assert again.success
        rerun = again.asset_materializations_for_node("character_prototypes")[0].metadata
        assert root.resolve(rerun["model_dir"].value) == model_dir  # shown relative to the data root

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
        assert root.resolve(meta[name]["model_dir"].value) == model_dir
        assert meta[name]["classifier"].value == f"{classifier.registered_model} v{classifier.version}"
        assert meta[name]["classifier_run_id"].value == classifier.mlflow_run_id

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
