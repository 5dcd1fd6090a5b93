"""The character classifier suite (seed 002): dataset -> classifier -> distilled student.

``character_dataset`` renders the procedural characters (or takes a folder-per-class dataset),
checks it and fixes its split; ``character_classifier`` trains the timm classifier on it and
registers it in MLflow; ``character_student`` distils it into a small student on the same split.
Each asset hands the next a record (paths relative to the data root), never a side file.
"""

import dataclasses
import random
import shutil
from pathlib import Path

import dagster as dg

from aesthetic_platform.assets.metadata import code_version_of, embedded_plots, root_path
from aesthetic_platform.atomic import sha256_bytes, write_json
from aesthetic_platform.characters.config import ClassifierConfig, DatasetConfig, DistillConfig, RenderConfig
from aesthetic_platform.characters.data import DatasetError, DatasetReport, prepare_dataset
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.tracking import MLflowResource
from aesthetic_platform.tracking.characters import TrackedCharacterModel

GROUP = "characters"
_CODE = ("aesthetic_platform.characters",)


class CharacterDatasetConfig(dg.Config, DatasetConfig, RenderConfig):
    """Launchpad form of ``DatasetConfig`` (the dataset and its split) and ``RenderConfig`` (used when no source_dir is given)."""


class CharacterClassifierConfig(dg.Config, ClassifierConfig):
    """Launchpad form of ``ClassifierConfig`` (same fields, same defaults)."""


class CharacterStudentConfig(dg.Config, DistillConfig):
    """Launchpad form of ``DistillConfig`` (same fields, same defaults)."""


def _render_if_needed(root: DataRoot, render: RenderConfig, context: dg.AssetExecutionContext) -> Path:
    """Rendered datasets are keyed by their render config; an identical one already on disk is reused."""
    from aesthetic_platform.characters.render import CHARACTERS_FILE, render_dataset

    key = sha256_bytes(render.model_dump_json().encode())[:12]
    folder = root.rendered_character_dataset(key)
    if (folder / CHARACTERS_FILE).exists():
        context.log.info(f"reusing rendered dataset {folder}")
        return folder
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    summary = render_dataset(partial, render)
    shutil.rmtree(folder, ignore_errors=True)  # an incomplete earlier render (no characters.json) is replaced
    partial.rename(folder)  # the folder appears complete or not at all
    context.log.info(f"rendered {summary.images} images of {len(summary.characters)} characters into {folder}")
    return folder


def _dataset_plots(dataset_dir: Path, report: DatasetReport, folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aesthetic_platform.atomic import write_with
    from aesthetic_platform.characters.render import contact_sheet
    from aesthetic_platform.images import load_image

    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    shown = report.classes[:16]
    images = []
    for name in shown:
        files = sorted(p for p in (dataset_dir / name).iterdir() if f"{name}/{p.name}" not in report.unreadable and p.is_file()
                       and p.suffix.lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp"))
        images += [load_image(p, fit_pixels=128 * 128) for p in rng.sample(files, min(4, len(files)))]
    sheet = folder / "samples.png"
    write_with(sheet, lambda p: contact_sheet(images, columns=8, cell=96).save(p, format="PNG"))
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(report.classes)), 3))
    ax.bar(range(len(report.classes)), [report.counts[c] for c in report.classes])
    ax.set_xticks(range(len(report.classes)), report.classes, rotation=90, fontsize=6)
    ax.set_ylabel("readable images")
    ax.set_title(f"class counts (imbalance {report.imbalance:.2f})")
    fig.tight_layout()
    counts = folder / "class_counts.png"
    write_with(counts, lambda p: fig.savefig(p, format="png", dpi=90))
    plt.close(fig)
    return {"samples": sheet, "class_counts": counts}


@dg.asset(
    code_version=code_version_of(*_CODE),
    group_name=GROUP,
    kinds={"python", "png"},
    description="A checked folder-per-class character dataset with a stratified, seeded split (rendered procedurally unless "
    "source_dir names a folder).",
)
def character_dataset(
    context: dg.AssetExecutionContext, config: CharacterDatasetConfig, data_root: DataRootResource
) -> dg.Output[DatasetReport]:
    root = data_root.root()
    dataset_config = DatasetConfig.model_validate(config.model_dump(include=set(DatasetConfig.model_fields)))
    if config.source_dir:
        dataset_dir = root.resolve(config.source_dir)
        source = "folder"
    else:
        render = RenderConfig.model_validate(config.model_dump(include=set(RenderConfig.model_fields)))
        dataset_dir = _render_if_needed(root, render, context)
        source = "rendered"
    try:
        report = prepare_dataset(dataset_dir, dataset_config)
    except DatasetError as e:
        raise dg.Failure(str(e)) from e
    if report.unreadable:
        context.log.warning(f"{len(report.unreadable)} unreadable files left out: {dict(list(report.unreadable.items())[:10])}")
    plots = _dataset_plots(dataset_dir, report, root.character_run("reports", context.run_id) / "dataset")
    record = dataclasses.replace(report, dataset_dir=root.relative(dataset_dir))
    return dg.Output(
        record,
        metadata={
            "dataset_dir": root_path(root, dataset_dir),
            "source": source,
            "classes": len(report.classes),
            "images": report.images,
            "class_counts": dg.MetadataValue.json(report.counts),
            "imbalance": dg.MetadataValue.float(report.imbalance),
            "unreadable": len(report.unreadable),
            "unreadable_files": dg.MetadataValue.json(dict(list(report.unreadable.items())[:50])),
            "split_sizes": dg.MetadataValue.json(report.split_sizes),
            "split_digest": report.split_digest,
            **embedded_plots(plots, root),
        },
    )


def _model_metadata(prefix: str, metrics: dict[str, float]) -> dict:
    return {f"{prefix}_{k}": dg.MetadataValue.float(float(v)) for k, v in metrics.items()}


@dg.asset(
    code_version=code_version_of(*_CODE),
    group_name=GROUP,
    pool="gpu",
    kinds={"pytorch", "mlflow", "safetensors"},
    description="The timm character classifier (EfficientNet-B0 by default) trained on character_dataset's train split, best "
    "epoch by validation accuracy, held-out metrics with a 95% CI, registered in MLflow as character-classifier.",
)
def character_classifier(
    context: dg.AssetExecutionContext, config: CharacterClassifierConfig, character_dataset: DatasetReport,
    data_root: DataRootResource, mlflow_tracking: MLflowResource,
) -> dg.Output[TrackedCharacterModel]:
    from aesthetic_platform.characters.classifier import plots, train_classifier
    from aesthetic_platform.tracking.characters import log_classifier, tracking_for

    root = data_root.root()
    settings = ClassifierConfig.model_validate(config.model_dump(include=set(ClassifierConfig.model_fields)))
    dataset_dir = root.resolve(character_dataset.dataset_dir)
    out_dir = root.character_run("classifiers", context.run_id)
    result = train_classifier(dataset_dir, settings, out_dir, progress=lambda e, m: context.log.info(f"epoch {e}: {m}"))
    tracking = tracking_for(mlflow_tracking.config_for(root))
    tracked = log_classifier(result, root, tracking, tags={"dagster.run_id": context.run_id, "dagster.asset": "character_classifier"},
                             dataset_digest=character_dataset.split_digest)
    run_url = mlflow_tracking.run_url(tracked.experiment_id, tracked.mlflow_run_id)
    context.log.info(f"MLflow run {tracked.mlflow_run_id}: {run_url}")
    test = result.test
    return dg.Output(
        tracked,
        metadata={
            "mlflow_run_id": tracked.mlflow_run_id,
            "mlflow_run": dg.MetadataValue.url(run_url),
            "registered_model": f"{tracked.registered_model} v{tracked.version}",
            "model_dir": root_path(root, out_dir),
            "model_name": settings.model_name,
            "classes": len(result.classes),
            "best_epoch": result.best_epoch,
            "test_accuracy_ci": f"{test.accuracy:.3f} [{test.ci_low:.3f}, {test.ci_high:.3f}] vs chance {test.chance:.3f}",
            "beats_chance": result.beats_chance(),
            **_model_metadata("test", test.metrics()),
            "per_class_accuracy": dg.MetadataValue.json(test.per_class),
            "split_sizes": dg.MetadataValue.json(result.split_sizes),
            "history": dg.MetadataValue.json(result.history),
            **embedded_plots(plots(result, root.character_run("reports", context.run_id) / "classifier"), root),
        },
    )


@dg.asset(
    code_version=code_version_of(*_CODE),
    group_name=GROUP,
    pool="gpu",
    kinds={"pytorch", "mlflow", "safetensors"},
    description="character_classifier distilled into a small student (MobileNetV2 by default) on the same split: accuracy gap "
    "against max_gap, parameters, file size and CPU images/s of both; registered in MLflow as character-student.",
)
def character_student(
    context: dg.AssetExecutionContext, config: CharacterStudentConfig, character_dataset: DatasetReport,
    character_classifier: TrackedCharacterModel, data_root: DataRootResource, mlflow_tracking: MLflowResource,
) -> dg.Output[TrackedCharacterModel]:
    from aesthetic_platform.characters.distill import distill, plots
    from aesthetic_platform.tracking.characters import log_student, tracking_for

    root = data_root.root()
    settings = DistillConfig.model_validate(config.model_dump(include=set(DistillConfig.model_fields)))
    out_dir = root.character_run("students", context.run_id)
    result = distill(character_classifier.path(root), root.resolve(character_dataset.dataset_dir), settings, out_dir,
                     progress=lambda e, m: context.log.info(f"epoch {e}: {m}"))
    tracking = tracking_for(mlflow_tracking.config_for(root))
    tracked = log_student(result, root, tracking, teacher=character_classifier,
                          tags={"dagster.run_id": context.run_id, "dagster.asset": "character_student"})
    run_url = mlflow_tracking.run_url(tracked.experiment_id, tracked.mlflow_run_id)
    verdict = "within" if result.within_max_gap else "OVER"
    context.log.info(f"student gap {result.gap:+.3f} ({verdict} max_gap {settings.max_gap}); MLflow run {run_url}")
    report_dir = root.character_run("reports", context.run_id) / "student"
    write_json(report_dir / "comparison.json", result.summary())
    return dg.Output(
        tracked,
        metadata={
            "mlflow_run_id": tracked.mlflow_run_id,
            "mlflow_run": dg.MetadataValue.url(run_url),
            "registered_model": f"{tracked.registered_model} v{tracked.version}",
            "teacher": f"{character_classifier.registered_model} v{character_classifier.version}",
            "model_dir": root_path(root, out_dir),
            "gap": dg.MetadataValue.float(result.gap),
            "gap_ci": f"[{result.gap_ci[0]:.3f}, {result.gap_ci[1]:.3f}]",
            "max_gap": dg.MetadataValue.float(settings.max_gap),
            "within_max_gap": result.within_max_gap,
            "comparison": dg.MetadataValue.json({"teacher": result.teacher.as_dict(), "student": result.student.as_dict()}),
            "compression": dg.MetadataValue.float(result.compression),
            "cpu_speedup": dg.MetadataValue.float(result.speedup),
            **_model_metadata("student_test", result.student.test.metrics()),
            **embedded_plots(plots(result, report_dir), root),
        },
    )


CHARACTER_ASSETS = [character_dataset, character_classifier, character_student]
