"""Character suite extensions (seed 002 §2, §3.2, §3.3): prototypes for new characters, image+text fusion, guided generator.

Each asset takes ``character_classifier``'s output (the ``TrackedCharacterModel`` record, its folder
relative to the data root) as an input, as ``eval_report`` takes ``aesthetic_model``'s, so the
classifier an asset used is the one the asset graph handed it, and is a thin call into
``aesthetic_platform.characters``.
"""

from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import BaseModel

from aesthetic_platform.assets.metadata import code_version_of, embedded_plots, root_path
from aesthetic_platform.characters.config import FusionConfig, GeneratorConfig, PrototypeConfig
from aesthetic_platform.characters.prototypes import RULE_OFFSET
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.embeddings import EmbeddingStoreResource
from aesthetic_platform.resources.tracking import MLflowResource
from aesthetic_platform.tracking.characters import TrackedCharacterModel

GROUP = "characters"
_CODE_VERSION = code_version_of("aesthetic_platform.characters")


class CharacterPrototypesConfig(dg.Config, PrototypeConfig):
    """The launchpad form of ``PrototypeConfig`` (same fields, same defaults)."""


class CharacterFusionConfig(dg.Config, FusionConfig):
    """The launchpad form of ``FusionConfig`` (same fields, same defaults)."""


class CharacterGeneratorConfig(dg.Config, GeneratorConfig):
    """The launchpad form of ``GeneratorConfig`` (same fields, same defaults)."""


def _classifier_metadata(classifier: TrackedCharacterModel, model_dir: Path, root: DataRoot) -> dict:
    """Which classifier the graph handed the asset: its folder, registered version and MLflow run."""
    return {
        "model_dir": root_path(root, model_dir),
        "classifier": f"{classifier.registered_model} v{classifier.version}",
        "classifier_run_id": classifier.mlflow_run_id,
    }


def _core(config: dg.Config, model: type[BaseModel]) -> Any:
    return model.model_validate(config.model_dump(include=set(model.model_fields)))


def _ci(values: tuple[float, float, float]) -> str:
    return f"{values[0]:.3f} [{values[1]:.3f}, {values[2]:.3f}]"


@dg.asset(code_version=_CODE_VERSION, group_name=GROUP, kinds={"pytorch", "sql", "mlflow"},
          description="Class prototypes of the classifier in the embedding store, the calibrated unknown threshold, and how "
                      "new characters imprinted from a few images and never-seen ones fare.")
def character_prototypes(
    context: dg.AssetExecutionContext,
    config: CharacterPrototypesConfig,
    character_classifier: TrackedCharacterModel,
    data_root: DataRootResource,
    embedding_store: EmbeddingStoreResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    from aesthetic_platform.characters.prototypes import prototype_plots, run_prototypes
    from aesthetic_platform.tracking.character_extensions import log_prototypes

    root = data_root.root()
    model_dir = character_classifier.path(root)
    settings: PrototypeConfig = _core(config, PrototypeConfig)
    work = root.unseen_character_renders
    with embedding_store.open(root) as store:
        report, _ = run_prototypes(store, model_dir, settings, work, root)
        store_url = store.url
    plots = prototype_plots(report, root.character_run("prototypes", context.run_id))
    logged = log_prototypes(report, settings.model_dump(), plots, mlflow_tracking.config_for(root),
                            tags={"dagster.run_id": context.run_id, "dagster.asset": "character_prototypes"})
    per_class = report.calibration.rule == RULE_OFFSET  # then the calibrated number is an offset added to each class's location
    threshold_key = "threshold_offset" if per_class else "threshold"
    context.log.info(f"{report.classes} prototypes of {report.model_id}; {threshold_key} {report.calibration.threshold:.4f}")
    return dg.MaterializeResult(metadata={
        **_classifier_metadata(character_classifier, model_dir, root),
        "feature_model": report.model_id,
        "prototype_set": report.set_sha256,
        "store": store_url,
        "classes": report.classes,
        threshold_key: dg.MetadataValue.float(report.calibration.threshold),
        "calibration": dg.MetadataValue.json(report.calibration.as_dict()),
        "known_accuracy": _ci(report.known_accuracy),
        "novel_accuracy": _ci(report.novel_accuracy),
        "novel_open_accuracy": _ci(report.novel_open_accuracy),
        "novel_chance": dg.MetadataValue.float(report.novel_chance),
        "unknown_rate": _ci(report.unknown_rate),
        "weights_unchanged": report.weights_unchanged,
        "summary": dg.MetadataValue.json(report.summary()),
        "mlflow_run_id": logged["run_id"],
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(logged["experiment_id"], logged["run_id"])),
        **embedded_plots(plots, root),
    })


@dg.asset(code_version=_CODE_VERSION, group_name=GROUP, kinds={"pytorch", "mlflow"},
          description="Gated late fusion of the frozen classifier's image features with a description's text embedding, "
                      "against image-only on the same split, where the text carries information (grey-scale, blurred images).")
def character_fusion(
    context: dg.AssetExecutionContext,
    config: CharacterFusionConfig,
    character_classifier: TrackedCharacterModel,
    data_root: DataRootResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    from aesthetic_platform.characters.fusion import fusion_plots, run_fusion_from_model
    from aesthetic_platform.tracking.character_extensions import log_fusion

    root = data_root.root()
    model_dir = character_classifier.path(root)
    settings: FusionConfig = _core(config, FusionConfig)
    result = run_fusion_from_model(model_dir, settings, root.fusion_renders, root)
    folder = root.character_run("fusion", context.run_id)
    result.save_pretrained(folder)
    plots = fusion_plots(result, folder / "plots")
    logged = log_fusion(result, plots, mlflow_tracking.config_for(root),
                        tags={"dagster.run_id": context.run_id, "dagster.asset": "character_fusion"})
    context.log.info(f"fusion {_ci(result.fusion_accuracy)} vs image-only {_ci(result.image_only_accuracy)}")
    return dg.MaterializeResult(metadata={
        **_classifier_metadata(character_classifier, model_dir, root),
        "fusion_dir": root_path(root, folder),
        "text_model": result.text_model,
        "fusion_accuracy": _ci(result.fusion_accuracy),
        "image_only_accuracy": _ci(result.image_only_accuracy),
        "text_head_accuracy": _ci(result.text_head_accuracy),
        "difference": _ci(result.difference),
        "mean_gate": dg.MetadataValue.float(result.mean_gate),
        "metrics": dg.MetadataValue.json(result.metrics()),
        "split_sizes": dg.MetadataValue.json(result.split_sizes),
        "mlflow_run_id": logged["run_id"],
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(logged["experiment_id"], logged["run_id"])),
        **embedded_plots(plots, root),
    })


@dg.asset(code_version=_CODE_VERSION, group_name=GROUP, pool="gpu", kinds={"pytorch", "mlflow"},
          description="Upsample+Conv2d generator of the classifier's characters, examined by the frozen classifier; per-epoch "
                      "loss terms, target-class confidence and sample grids.")
def character_generator(
    context: dg.AssetExecutionContext,
    config: CharacterGeneratorConfig,
    character_classifier: TrackedCharacterModel,
    data_root: DataRootResource,
    mlflow_tracking: MLflowResource,
) -> dg.MaterializeResult:
    from aesthetic_platform.characters.generator import confidence_plot, run_generator_from_model
    from aesthetic_platform.tracking.character_extensions import log_generator

    root = data_root.root()
    model_dir = character_classifier.path(root)
    settings: GeneratorConfig = _core(config, GeneratorConfig)
    out_dir = root.character_run("generators", context.run_id)
    result = run_generator_from_model(model_dir, settings, out_dir,
                                      on_epoch=lambda epoch, m: context.log.info(f"epoch {epoch}: {m}"), root=root)
    plots = confidence_plot(result, out_dir / "plots")
    logged = log_generator(result, plots, mlflow_tracking.config_for(root),
                           tags={"dagster.run_id": context.run_id, "dagster.asset": "character_generator"})
    last_grid = {"samples_last_epoch": result.samples[-1]}
    return dg.MaterializeResult(metadata={
        **_classifier_metadata(character_classifier, model_dir, root),
        "generator_dir": root_path(root, out_dir),
        "perceptual_network": result.perceptual,
        "initial_confidence": dg.MetadataValue.float(result.initial_confidence),
        "first_epoch_confidence": dg.MetadataValue.float(result.confidences[0]),
        "last_epoch_confidence": dg.MetadataValue.float(result.confidences[-1]),
        "confidence_per_epoch": dg.MetadataValue.json(result.confidences),
        "history": dg.MetadataValue.json(result.history),
        "mlflow_run_id": logged["run_id"],
        "mlflow_run": dg.MetadataValue.url(mlflow_tracking.run_url(logged["experiment_id"], logged["run_id"])),
        **embedded_plots({**plots, **last_grid}, root),
    })


CHARACTER_EXTENSION_ASSETS = [character_prototypes, character_fusion, character_generator]
