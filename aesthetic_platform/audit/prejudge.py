"""Pre-judge filter: a registered embedding classifier screens candidate images before the judge sees them.

It plugs into the content audit's image-classifier hook (``AuditConfig.image_classifier``,
``"aesthetic_platform.audit.prejudge:usable_filter"``): each candidate's vector is looked
up in the store by sha256 (or computed with the classifier's own embedding model and stored),
the classifier's probability of the rejecting label is computed, and a rejected image comes
back ``flagged`` with category ``classifier:<task>`` and, in its scores, that probability and
the classifier's registered version. Judging leaves flagged candidates out (``excluded_candidates``),
so the judge is not paid for them, and the audit table keeps each skip with its reason.

Environment for the zero-argument factory: ``AESTHETIC_PREJUDGE_TASK`` (default ``usable``),
``AESTHETIC_PREJUDGE_REJECT`` (the label that means "skip", default ``no``),
``AESTHETIC_PREJUDGE_THRESHOLD`` (default 0.5), ``AESTHETIC_PREJUDGE_CHECKPOINT`` (student
model folder for images not yet embedded; default the champion), and the tracking store's
``MLFLOW_TRACKING_URI`` and ``AESTHETIC_MLFLOW_PREFIX`` (the name prefix this data root's
classifiers were registered under) as the profiles read them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.audit.images import ImageVerdict
from aesthetic_platform.embeddings.config import EmbeddingStoreConfig
from aesthetic_platform.embeddings.embedders import StudentImageEmbedder, image_item
from aesthetic_platform.embeddings.flow import embed_missing
from aesthetic_platform.embeddings.store import Store
from aesthetic_platform.paths import DataRoot


class PrejudgeFilter:
    """``classify(paths)`` -> one ``ImageVerdict`` per image: flagged when P(reject_label) >= threshold."""

    def __init__(
        self, root: DataRoot, task: str = "usable", reject_label: str = "no", threshold: float = 0.5,
        checkpoint: str | Path | None = None, store_config: EmbeddingStoreConfig | None = None, tracking_uri: str | None = None,
        name_prefix: str = "",
    ) -> None:
        from aesthetic_platform.tracking import TrackingConfig
        from aesthetic_platform.tracking.classifiers import EXPERIMENT, load_registered_classifier

        self.root, self.task, self.threshold, self.checkpoint = root, task, threshold, checkpoint
        self.store_config = store_config
        tracking = TrackingConfig.for_root(root, tracking_uri, EXPERIMENT, name_prefix=name_prefix)
        self.classifier, self.version = load_registered_classifier(tracking, task)
        if reject_label not in self.classifier.classes:
            raise ValueError(f"classifier of {task!r} knows {self.classifier.classes}, not the reject label {reject_label!r}")
        self.reject_index = self.classifier.classes.index(reject_label)
        self.reject_label = reject_label
        self.name = f"classifier:{task}@v{self.version}"
        #: Part of the audit's settings hash: a new version, label or threshold audits the images again.
        self.fingerprint = f"{self.name} {reject_label}>={threshold}"

    def classify(self, paths: Sequence[str]) -> list[ImageVerdict]:
        items = [image_item(path, sha256_file(path)) for path in paths]
        with Store.open(self.store_config, self.root) as store:
            record = store.model(self.classifier.model_id)
            if record.modality != "image":
                raise ValueError(f"{self.name} was trained on {record.model_id}, a {record.modality} model; it cannot screen images")
            vectors = store.get_many(record, [item.sha256 for item in items])
            missing = [item for item in items if item.sha256 not in vectors]
            if missing:
                if record.name != "student-image":
                    raise ValueError(f"{len(missing)} images have no {record.model_id} vector and only student-image models embed here")
                from aesthetic_platform.registry import resolve_model

                embedder = StudentImageEmbedder(resolve_model(self.root, self.checkpoint))
                if embedder.model_id != record.model_id:
                    raise ValueError(f"the checkpoint embeds as {embedder.model_id}, the classifier needs {record.model_id}")
                report = embed_missing(store, embedder, missing)
                if report.failed:
                    raise ValueError(f"{len(report.failed)} images could not be embedded, e.g. {next(iter(report.failed.values()))}")
                vectors.update(store.get_many(record, [item.sha256 for item in missing]))
        matrix = np.stack([vectors[item.sha256] for item in items])
        reject = self.classifier.predict_proba(matrix)[:, self.reject_index]
        return [
            ImageVerdict(
                flagged=bool(p >= self.threshold),
                categories=[f"classifier:{self.task}"] if p >= self.threshold else [],
                scores={f"p_{self.reject_label}": float(p), "classifier_version": float(self.version)},
            )
            for p in reject
        ]


def registered_safety_filter(
    root: DataRoot, task: str, reject_label: str = "no", threshold: float = 0.5, tracking_uri: str | None = None,
    checkpoint: str | Path | None = None, store_config: EmbeddingStoreConfig | None = None, name_prefix: str = "",
) -> PrejudgeFilter | None:
    """The newest registered classifier of ``task`` (under ``name_prefix``) as the audit's image screen; None when
    none is registered.

    A data root whose local tracking database does not exist yet has no registered model, and is
    answered without starting MLflow. A registration that exists but cannot be used raises: only
    an absent one lets images pass unscreened."""
    if not task:
        return None
    if not tracking_uri and not root.mlflow_db.exists():
        return None
    from aesthetic_platform.tracking.classifiers import NotRegisteredError

    try:
        return PrejudgeFilter(root, task, reject_label, threshold, checkpoint, store_config, tracking_uri, name_prefix)
    except NotRegisteredError:
        return None


def usable_filter() -> PrejudgeFilter:
    """The audit hook's zero-argument factory (see the module docstring for its environment)."""
    return PrejudgeFilter(
        DataRoot.from_env(),
        task=os.environ.get("AESTHETIC_PREJUDGE_TASK", "usable"),
        reject_label=os.environ.get("AESTHETIC_PREJUDGE_REJECT", "no"),
        threshold=float(os.environ.get("AESTHETIC_PREJUDGE_THRESHOLD", "0.5")),
        checkpoint=os.environ.get("AESTHETIC_PREJUDGE_CHECKPOINT") or None,
        tracking_uri=os.environ.get("MLFLOW_TRACKING_URI") or None,
        name_prefix=os.environ.get("AESTHETIC_MLFLOW_PREFIX", ""),
    )
