"""The image side of the audit, and the plug point for an image safety classifier.

No image safety model ships with the platform. Until one is registered, candidate
images pass the audit and their rows say so (``auditor='none'``, reason "no image
safety model"), unless the moderation endpoint is asked to look at images
(``AuditConfig.moderate_images`` with an omni moderation model).

**Plug point.** Anything with a ``name`` and a ``classify(paths)`` method that returns
one ``ImageVerdict`` per path is an ``ImageSafetyClassifier``. Pass one to
``audit_batch(..., image_classifier=...)``, or name a factory in
``AuditConfig.image_classifier`` as ``"package.module:factory"`` (a zero-argument callable
returning the classifier); the ``content_audit`` asset loads it from there. A classifier
trained on cached embeddings of the embedding store for a safety task is meant to be
wrapped this way: look up (or compute) each image's embedding by sha256, apply the
classifier, return its verdicts. An exception from ``classify`` (or a wrong number of
verdicts) marks the images ``unaudited`` with the error.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

NO_IMAGE_MODEL = "no image safety model registered; images pass unscreened"


@dataclass(frozen=True)
class ImageVerdict:
    flagged: bool
    categories: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class ImageSafetyClassifier(Protocol):
    name: str

    def classify(self, paths: Sequence[str]) -> list[ImageVerdict]: ...


def load_image_classifier(spec: str) -> ImageSafetyClassifier | None:
    """The classifier a ``"package.module:factory"`` spec names; None for ``""``."""
    if not spec:
        return None
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"image classifier {spec!r} must look like 'package.module:factory'")
    factory = getattr(importlib.import_module(module_name), attr)
    classifier = factory()
    if not isinstance(classifier, ImageSafetyClassifier):
        raise TypeError(f"{spec} returned {type(classifier).__name__}, which has no 'name' and 'classify(paths)'")
    return classifier
