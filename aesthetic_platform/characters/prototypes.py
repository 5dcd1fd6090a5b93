"""New characters without retraining (seed 002 §3.2): class prototypes in the shared embedding store.

The frozen classifier's pooled penultimate features are the feature database. Everything
lives in the embedding store (``aesthetic_platform.embeddings``), so it is shared, cached
by content hash and survives processes:

- **Per-image features**: model ``character-classifier@<hash of the weights>`` (one model
  id per classifier version: retrained weights never mix with old vectors), keyed by the
  image file's sha256; the image is an item with its path.
- **Prototypes**: model ``character-prototypes@<same hash>``. Pooled activations share a large
  common component (every cosine similarity would be near 1), so a set stores a centre (the
  mean raw feature of the images it was built from, under the same model) and a prototype is
  the mean of its members' centred, L2-normalised features. Its key is the sha256 of a text item whose text is the
  canonical JSON ``{"kind", "model", "class", "members"}`` (the sorted member hashes), so a
  prototype is immutable and content-addressed, like every other row of the store: an
  update is a new prototype, never an overwrite.
- **Prototype sets**: a text item holding the canonical JSON of one whole set (class ->
  prototype hash and member count, the unknown threshold and its calibration, the parent
  set, the centre). The set in use for a classifier version is the newest label row of task
  ``character-prototype-set`` by annotator ``<model id>`` (labels are append-only), so
  every earlier set stays in the store and can be read back.

``add_class`` imprints a new class from a few images and ``update_class`` folds new images
into an existing prototype (running mean; the same vector as recomputing over all members).
Neither touches the classifier: no gradient step, no weight changes. Prediction is the
cosine similarity to every prototype; the nearest class is answered unless the image is too far
from it, then the answer is ``unknown``.

**Open-set rule (per-class thresholds).** How close a class's own images sit to its prototype
differs by class: the classes a set is built from (training images of the classifier) are tight,
a class imprinted from 5 images of a character the classifier never saw is loose (its images are
~0.1 less similar to its prototype). One cosine threshold for all therefore turns away most
queries of imprinted classes. Instead:

- every class records its *member similarity*: the mean leave-one-out cosine of its members to the
  prototype of the other members (what an image it was not built from can expect), measured when
  the class is built, added or updated;
- calibration gives each class a *location* and one global *offset*: the classes calibrated
  together share one location, the mean of their member similarities (for them the rule is one
  cosine threshold, exactly as before: their per-class estimates, from images the classifier was
  fit to, were measured to rank worse); the offset is the lowest that keeps the calibration
  unknowns (images of characters the set does not know) at the target false-accept rate; a
  class's cosine threshold is its location plus the offset, stored with it;
- ``add_class`` locates a new class at its own member similarity, so it sits as far above its own
  members' level as the built classes sit above theirs; the calibration unknowns are on record
  (their features are cached), so its threshold is then raised, if needed, until the whole set
  again accepts no more of them than the target allows. ``update_class`` moves the class's
  location by the change of its member similarity and checks the same. No other class's
  threshold moves.

An image is accepted as its nearest class when its cosine reaches that class's stored threshold.
Sets calibrated before the rule existed keep their plain cosine threshold (``Calibration.rule ==
"cosine"``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aesthetic_platform.atomic import sha256_bytes, sha256_file
from aesthetic_platform.embeddings.embedders import Embedder, EmbeddingError
from aesthetic_platform.embeddings.flow import embed_missing
from aesthetic_platform.embeddings.labels import LabelRecord, add_labels, label_history
from aesthetic_platform.embeddings.store import Item, ModelSpec, Store
from aesthetic_platform.images import ImageInputError, load_image
from aesthetic_platform.paths import DataRoot

if TYPE_CHECKING:
    import torch
    from PIL import Image

FEATURE_MODEL = "character-classifier"
PROTOTYPE_MODEL = "character-prototypes"
SET_TASK = "character-prototype-set"
CURRENT = "current"
UNKNOWN = "unknown"


class PrototypeError(ValueError):
    """A request the prototype database refuses, with the reason."""


class FeatureModel(Protocol):
    """What the prototype database needs of a classifier (``characters.classifier.CharacterClassifier`` has it)."""

    classes: list[str]

    @property
    def feature_dim(self) -> int: ...

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor: ...

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def state_dict(self) -> Mapping[str, Any]: ...


def resolve_device(device: str = "") -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def weights_version(model: FeatureModel) -> str:
    """A short hash of every tensor of the model (names, dtypes, bytes): one embedding-model version per set of weights,
    computed from the weights themselves so an in-memory model and its saved copy agree."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def load_images(paths: Sequence[str | Path]) -> list[Image.Image]:
    """Every image decoded up front through the shared loader, so a bad file fails the request before anything is stored."""
    images = []
    for index, path in enumerate(paths):
        try:
            images.append(load_image(Path(path)))
        except ImageInputError as exc:
            raise exc.at(index) from None
    return images


def image_features(model: FeatureModel, images: Sequence[Image.Image], batch_size: int = 64, device: str = "") -> np.ndarray:
    """Pooled penultimate features ``[n, D]`` of the frozen model (eval mode, no autograd)."""
    import torch

    module: Any = model
    target = torch.device(resolve_device(device))
    module.to(target).eval()
    out = np.zeros((len(images), model.feature_dim), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch = model.preprocess(list(images[start : start + batch_size])).to(target)
            out[start : start + len(batch)] = model.features(batch).float().cpu().numpy()
    return out


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def member_similarity(unit: np.ndarray) -> float | None:
    """Mean leave-one-out cosine of a class's members (centred, unit rows) to the prototype of the others: how close an
    image of the class it was not built from can expect to be. Leaving the image out matters most for few-shot classes,
    where each member pulls the prototype towards itself. None for a single member."""
    unit = np.asarray(unit, dtype=np.float64)
    if len(unit) < 2:
        return None
    others = normalize_rows(unit.sum(axis=0, keepdims=True) - unit)
    return float(np.mean(np.sum(unit * others, axis=1)))


class CharacterFeatureEmbedder(Embedder):
    """The frozen classifier as an embedder of the shared store (image items -> pooled features)."""

    def __init__(self, model: FeatureModel, batch_size: int = 64, device: str = "") -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.spec = ModelSpec(FEATURE_MODEL, weights_version(model), int(model.feature_dim), "image")

    def _embed(self, items: Sequence[Item]) -> np.ndarray:
        images = [load_image(Path(item.path or ""), name=item.path) for item in items]
        return image_features(self.model, images, self.batch_size, self.device)


def prototype_spec(feature_spec: ModelSpec) -> ModelSpec:
    return ModelSpec(PROTOTYPE_MODEL, feature_spec.version, feature_spec.dimension, "image")


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


RULE_OFFSET = "class-offset"  # accept when cos >= the top class's threshold = its location + this calibration's threshold
RULE_COSINE = "cosine"  # accept when cos >= threshold (sets calibrated before per-class offsets)
#: How far above the highest rejected unknown a threshold sits. Cosines are float32 (~1e-7 apart at 1): a threshold a
#: float64 ulp above that unknown could accept it again once offsets and locations are added back together.
MARGIN = 1e-6


@dataclass(frozen=True)
class Calibration:
    """The unknown threshold and what it costs, measured on the calibration images."""

    threshold: float  # accept the top class when its score (see ``rule``) is >= threshold
    target_false_accept: float
    false_accept: float  # share of calibration unknowns accepted as some class
    known_accept: float  # share of held-out known-class images accepted
    known_accuracy: float  # share of held-out known-class images accepted AND right
    unknown_images: int
    known_images: int
    rule: str = RULE_COSINE
    unknowns: str | None = None  # sha256 of the text item listing the calibration unknowns' image hashes (features cached)

    def as_dict(self) -> dict[str, float | int | str | None]:
        return {
            "threshold": self.threshold, "target_false_accept": self.target_false_accept, "false_accept": self.false_accept,
            "known_accept": self.known_accept, "known_accuracy": self.known_accuracy, "unknown_images": self.unknown_images,
            "known_images": self.known_images, "rule": self.rule, "unknowns": self.unknowns,
        }


@dataclass(frozen=True)
class ClassEntry:
    prototype: str  # sha256 of the prototype item
    count: int  # member images
    member_similarity: float | None = None  # mean leave-one-out cosine of the members to their prototype (None: one member)
    threshold: float | None = None  # cosine an image needs to be accepted as this class (None: the set is not calibrated)
    location: float | None = None  # reference similarity its acceptance is measured from (None: its member similarity)


@dataclass(frozen=True)
class PrototypeSet:
    """One immutable version of a classifier's prototype database."""

    model_id: str
    classes: dict[str, ClassEntry]
    calibration: Calibration | None = None
    parent: str | None = None
    center: str | None = None  # sha256 of the centre vector subtracted before normalising (None: no centring)

    @property
    def threshold(self) -> float | None:
        return None if self.calibration is None else self.calibration.threshold

    def document(self) -> dict[str, Any]:
        return {
            "kind": SET_TASK, "model": self.model_id, "parent": self.parent, "center": self.center,
            "classes": {name: {"prototype": e.prototype, "count": e.count, "member_similarity": e.member_similarity,
                               "location": e.location, "threshold": e.threshold}
                        for name, e in sorted(self.classes.items())},
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
        }

    @property
    def sha256(self) -> str:
        return sha256_bytes(_canonical(self.document()).encode("utf-8"))

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> PrototypeSet:
        calibration = doc.get("calibration")
        return cls(
            model_id=doc["model"],
            classes={name: ClassEntry(e["prototype"], int(e["count"]), e.get("member_similarity"), e.get("threshold"),
                                      e.get("location"))
                     for name, e in doc["classes"].items()},
            calibration=Calibration(**calibration) if calibration else None,
            parent=doc.get("parent"),
            center=doc.get("center"),
        )

    def locations(self) -> dict[str, float]:
        """Where each class's acceptance is measured from: ``score = cos - location >= calibration.threshold``.

        Under the offset rule a class with a threshold is located at its threshold minus the global offset (its
        ``location``, or higher where an added class had to be raised to keep the false-accept target); otherwise at its
        ``location`` or member similarity. A class with neither (one member) borrows the mean of the others (a set of
        singletons: 0, plain cosine). Under the cosine rule every location is 0."""
        calibration = self.calibration
        if calibration is not None and calibration.rule != RULE_OFFSET:
            return dict.fromkeys(self.classes, 0.0)
        own: dict[str, float] = {}
        for n, e in self.classes.items():
            value = e.location if e.location is not None else e.member_similarity
            if value is not None:
                own[n] = value
        fallback = float(np.mean(list(own.values()))) if own else 0.0
        out = {n: own.get(n, fallback) for n in self.classes}
        if calibration is not None:
            out.update({n: e.threshold - calibration.threshold for n, e in self.classes.items() if e.threshold is not None})
        return out

    def class_thresholds(self) -> dict[str, float]:
        """The cosine each class needs for an image to be accepted as it (-inf when the set is not calibrated). Acceptance
        compares the cosine with this stored number itself, never a recombination of offsets, so what calibration
        counted is exactly what prediction does."""
        calibration = self.calibration
        if calibration is None:
            return dict.fromkeys(self.classes, float("-inf"))
        if calibration.rule != RULE_OFFSET:
            return dict.fromkeys(self.classes, calibration.threshold)
        locations = self.locations()
        return {n: e.threshold if e.threshold is not None else locations[n] + calibration.threshold for n, e in self.classes.items()}


@dataclass(frozen=True)
class Prediction:
    label: str  # the top class, or ``unknown`` below the threshold
    top_class: str
    similarity: float  # cosine similarity to the top class's prototype
    ranking: list[tuple[str, float]] = field(default_factory=list)  # best classes first
    score: float = float("nan")  # what the threshold is compared with: cosine minus the top class's location

    @property
    def known(self) -> bool:
        return self.label != UNKNOWN


def calibrate(
    known_similarity: np.ndarray, known_correct: np.ndarray, unknown_similarity: np.ndarray, target_false_accept: float,
    rule: str = RULE_COSINE,
) -> Calibration:
    """The (almost) lowest threshold that accepts at most ``target_false_accept`` of the unknown images.

    ``*_similarity`` are each image's score for its top class (cosine similarity, minus the class's
    location under the offset rule); ``known_correct`` whether the top class of a known image is
    its true class. With n unknowns, floor(target·n) of them may stay above the threshold; the
    threshold sits ``MARGIN`` above the next one."""
    unknown = np.sort(np.asarray(unknown_similarity, dtype=np.float64))[::-1]
    if unknown.size == 0:
        raise PrototypeError("calibration needs images of characters outside the prototype set")
    allowed = int(np.floor(target_false_accept * unknown.size + 1e-9))
    threshold = -1.0 if allowed >= unknown.size else float(unknown[allowed]) + MARGIN
    known = np.asarray(known_similarity, dtype=np.float64)
    accepted = known >= threshold
    correct = np.asarray(known_correct, dtype=bool)
    return Calibration(
        threshold=threshold,
        target_false_accept=float(target_false_accept),
        false_accept=float(np.mean(unknown >= threshold)),
        known_accept=float(np.mean(accepted)) if known.size else float("nan"),
        known_accuracy=float(np.mean(accepted & correct)) if known.size else float("nan"),
        unknown_images=int(unknown.size),
        known_images=int(known.size),
        rule=rule,
    )


class PrototypeDatabase:
    """A classifier version's prototypes in the store: build, add, update, calibrate, predict.

    The classifier is only read (features in eval mode under ``no_grad``); its weights never change here."""

    def __init__(self, store: Store, model: FeatureModel, batch_size: int = 64, device: str = "") -> None:
        self.store = store
        self.model = model
        self.embedder = CharacterFeatureEmbedder(model, batch_size=batch_size, device=device)
        self.feature_record = store.register_model(self.embedder.spec)
        self.prototype_record = store.register_model(prototype_spec(self.embedder.spec))

    @property
    def model_id(self) -> str:
        return self.embedder.model_id

    # ---- features ---------------------------------------------------------------------------

    def features_of(self, paths: Sequence[str | Path], character: str | None = None) -> tuple[list[str], np.ndarray]:
        """Each image's sha256 and raw features, embedded once and cached in the store (decoded and checked first, so a
        bad image stores nothing)."""
        paths = [Path(p) for p in paths]
        load_images(paths)
        hashes = [sha256_file(p) for p in paths]
        known = self.store.get_items(hashes)  # an item's metadata is refreshed on every write: keep what others recorded
        extra = {"character": character} if character else {}
        items = []
        for sha, path in zip(hashes, paths, strict=True):
            items.append(Item(sha, "image", path=str(path), meta={**(known[sha].meta if sha in known else {}), **extra}))
        report = embed_missing(self.store, self.embedder, items, batch_size=self.embedder.batch_size)
        if report.failed:
            sha, why = next(iter(report.failed.items()))
            raise PrototypeError(f"{len(report.failed)} image(s) could not be embedded, e.g. {sha}: {why}")
        found = self.store.get_many(self.feature_record, hashes)
        return hashes, np.stack([found[h] for h in hashes])

    def center_vector(self, prototype_set: PrototypeSet | None) -> np.ndarray | None:
        if prototype_set is None or prototype_set.center is None:
            return None
        found = self.store.get_many(self.prototype_record, [prototype_set.center])
        if prototype_set.center not in found:
            raise PrototypeError(f"centre vector {prototype_set.center} of {self.model_id} is missing from the store")
        return found[prototype_set.center]

    def embed_space(self, raw: np.ndarray, prototype_set: PrototypeSet | None) -> np.ndarray:
        """Raw features -> the space prototypes live in: minus the set's centre, then L2-normalised."""
        center = self.center_vector(prototype_set)
        raw = np.atleast_2d(raw)
        return normalize_rows(raw - center if center is not None else raw)

    # ---- sets -------------------------------------------------------------------------------

    def current(self) -> PrototypeSet | None:
        """The set in use for this classifier version (the newest pointer label), or None."""
        rows = [r for r in label_history(self.store, SET_TASK) if r.annotator == self.model_id and r.label == CURRENT]
        if not rows:
            return None
        item = self.store.get_items([rows[-1].item]).get(rows[-1].item)
        if item is None or item.text is None:
            raise PrototypeError(f"prototype set {rows[-1].item} of {self.model_id} is missing from the store")
        return PrototypeSet.from_document(json.loads(item.text))

    def require_current(self) -> PrototypeSet:
        found = self.current()
        if found is None:
            raise PrototypeError(
                f"no prototypes for {self.model_id} in {self.store.url}: materialize character_prototypes or add a class first"
            )
        return found

    def history(self) -> list[str]:
        """Every set this classifier version has used, oldest first (sha256 of the set items)."""
        return [r.item for r in label_history(self.store, SET_TASK) if r.annotator == self.model_id and r.label == CURRENT]

    def _commit(self, new: PrototypeSet, expected_parent: str | None) -> PrototypeSet:
        """Store the set item and move the pointer; refuses when another writer moved it since ``expected_parent`` was read."""
        now = self.current()
        if (now.sha256 if now else None) != expected_parent:
            raise PrototypeError(f"the prototype set of {self.model_id} changed while this update ran; retry it")
        text = _canonical(new.document())
        sha = sha256_bytes(text.encode("utf-8"))
        meta = {"kind": SET_TASK, "model": self.model_id, "classes": len(new.classes), "threshold": new.threshold}
        self.store.put_items([Item(sha, "text", text=text, meta=meta)])
        add_labels(self.store, [LabelRecord(item=sha, task=SET_TASK, annotator=self.model_id, label=CURRENT)])
        return new

    def _store_prototype(self, name: str, members: Iterable[str], vector: np.ndarray, spread: float | None) -> ClassEntry:
        members = sorted(set(members))
        text = _canonical({"kind": PROTOTYPE_MODEL, "model": self.model_id, "class": name, "members": members})
        sha = sha256_bytes(text.encode("utf-8"))
        self.store.put_items([Item(sha, "text", text=text, meta={"kind": PROTOTYPE_MODEL, "class": name, "count": len(members)})])
        self.store.put_many(self.prototype_record, {sha: vector})
        return ClassEntry(sha, len(members), spread)

    def members(self, name: str, prototype_set: PrototypeSet | None = None) -> list[str]:
        entry = (prototype_set or self.require_current()).classes.get(name)
        if entry is None:
            raise PrototypeError(f"no class {name!r} in the prototype set of {self.model_id}")
        item = self.store.get_items([entry.prototype])[entry.prototype]
        return list(json.loads(item.text or "{}")["members"])

    def prototype_matrix(self, prototype_set: PrototypeSet) -> tuple[list[str], np.ndarray]:
        names = sorted(prototype_set.classes)
        found = self.store.get_many(self.prototype_record, [prototype_set.classes[n].prototype for n in names])
        missing = [n for n in names if prototype_set.classes[n].prototype not in found]
        if missing:
            raise PrototypeError(f"prototype vectors of {missing} are missing from the store under {self.prototype_record.model_id}")
        return names, normalize_rows(np.stack([found[prototype_set.classes[n].prototype] for n in names]))

    # ---- building -----------------------------------------------------------------------------

    def build(self, images_by_class: Mapping[str, Sequence[str | Path]]) -> PrototypeSet:
        """A fresh set (replacing the current one, which stays in the history) from each class's images."""
        if not images_by_class:
            raise PrototypeError("no classes to build prototypes from")
        parent = self.current()
        raw: dict[str, tuple[list[str], np.ndarray]] = {}
        for name, paths in sorted(images_by_class.items()):
            _check_name(name)
            if not paths:
                raise PrototypeError(f"class {name!r} has no images")
            raw[name] = self.features_of(paths, name)
        everything = dict(zip([h for hs, _ in raw.values() for h in hs], np.concatenate([f for _, f in raw.values()]), strict=True))
        center = self._store_center(list(everything), np.mean(np.stack(list(everything.values())), axis=0))
        base = PrototypeSet(self.model_id, {}, None, parent.sha256 if parent else None, center)
        classes = {name: self._prototype_of(name, hashes, self.embed_space(feats, base)) for name, (hashes, feats) in raw.items()}
        return self._commit(replace(base, classes=classes), parent.sha256 if parent else None)

    def _store_center(self, members: list[str], vector: np.ndarray) -> str:
        """The mean raw feature of the images a set was built from. Pooled activations share a large common component
        (every cosine would be near 1 without removing it); subtracting it spreads the classes apart."""
        text = _canonical({"kind": "character-feature-center", "model": self.model_id, "members": sorted(members)})
        sha = sha256_bytes(text.encode("utf-8"))
        self.store.put_items([Item(sha, "text", text=text, meta={"kind": "character-feature-center", "count": len(members)})])
        self.store.put_many(self.prototype_record, {sha: vector})
        return sha

    def _prototype_of(self, name: str, hashes: list[str], unit: np.ndarray) -> ClassEntry:
        unique = dict(zip(hashes, unit, strict=True))
        rows = np.stack(list(unique.values()))
        return self._store_prototype(name, unique, np.mean(rows, axis=0), member_similarity(rows))

    def add_class(self, name: str, images: Sequence[str | Path], base: PrototypeSet | None = None, commit: bool = True) -> PrototypeSet:
        """Imprint a new class from a few images: its prototype joins the set; no gradient step, no weight change.

        In a calibrated set its threshold is fitted for it (see the module docstring: its own member similarity plus the
        offset, raised if the calibration unknowns need it). ``base`` (default: the current set) is the set it joins;
        ``commit=False`` returns the new set without making it
        current (its vectors are stored, content-addressed, either way), for evaluations that must leave the live set alone."""
        _check_name(name)
        if not images:
            raise PrototypeError(f"add_class {name!r}: no images given")
        parent = base if base is not None else self.current()
        if parent is not None and name in parent.classes:
            raise PrototypeError(f"class {name!r} already exists in the set of {self.model_id}; use update_class to add images to it")
        hashes, feats = self.features_of(images, name)
        classes = dict(parent.classes) if parent else {}
        classes[name] = self._prototype_of(name, hashes, self.embed_space(feats, parent))
        parent_sha = parent.sha256 if parent else None
        new = PrototypeSet(self.model_id, classes, parent.calibration if parent else None, parent_sha, parent.center if parent else None)
        new = self._fit_class_threshold(new, name)
        return self._commit(new, parent_sha) if commit else new

    def update_class(self, name: str, images: Sequence[str | Path]) -> PrototypeSet:
        """Fold new images into an existing class: running mean over the union of members (images already members count once)."""
        parent = self.require_current()
        entry = parent.classes.get(name)
        if entry is None:
            raise PrototypeError(f"no class {name!r} in the set of {self.model_id}; use add_class for a new one")
        hashes, feats = self.features_of(images, name)
        old_members = set(self.members(name, parent))
        fresh = {h: f for h, f in zip(hashes, self.embed_space(feats, parent), strict=True) if h not in old_members}
        if not fresh:
            return parent
        old = self.store.get_many(self.prototype_record, [entry.prototype])[entry.prototype]
        total = entry.count + len(fresh)
        vector = (old * entry.count + np.sum(np.stack(list(fresh.values())), axis=0)) / total
        # the member similarity is re-measured over all members (their features are cached: no forward pass)
        cached = self.store.get_many(self.feature_record, sorted(old_members))
        missing = old_members - set(cached)
        if missing:
            raise PrototypeError(f"features of {len(missing)} member(s) of {name!r} are missing from {self.feature_record.model_id}")
        old_unit = self.embed_space(np.stack([cached[h] for h in sorted(old_members)]), parent)
        spread = member_similarity(np.concatenate([old_unit, np.stack(list(fresh.values()))]))
        classes = dict(parent.classes)
        classes[name] = self._store_prototype(name, old_members | set(fresh), vector, spread)
        if entry.location is not None and entry.member_similarity is not None and spread is not None:
            # the class keeps its place relative to the others, moved by how much tighter or looser its members became
            classes[name] = replace(classes[name], location=entry.location + spread - entry.member_similarity)
        new = self._fit_class_threshold(replace(parent, classes=classes, parent=parent.sha256), name)
        return self._commit(new, parent.sha256)

    def set_calibration(self, calibration: Calibration, classes: Mapping[str, ClassEntry] | None = None) -> PrototypeSet:
        """Make ``calibration`` the current set's (with ``classes``: entries of the same prototypes carrying the locations
        it was calibrated with); under the offset rule each class's threshold becomes its location (else its member
        similarity) plus the calibrated offset."""
        parent = self.require_current()
        if classes is not None and {n: e.prototype for n, e in classes.items()} != {n: e.prototype for n, e in parent.classes.items()}:
            raise PrototypeError(f"the prototype set of {self.model_id} changed while it was calibrated; retry it")
        classes = dict(classes if classes is not None else parent.classes)
        if calibration.rule == RULE_OFFSET:
            locations = replace(parent, classes=classes, calibration=None).locations()
            classes = {n: replace(e, threshold=locations[n] + calibration.threshold) for n, e in classes.items()}
        return self._commit(replace(parent, classes=classes, calibration=calibration, parent=parent.sha256), parent.sha256)

    def _fit_class_threshold(self, prototype_set: PrototypeSet, name: str) -> PrototypeSet:
        """Re-calibrate one class that was just added or updated, leaving every other class's acceptance as it was.

        Its threshold starts at its location (a new class: its own member similarity) plus the set's offset. A new
        prototype can also attract images of characters the set does not know, so when the calibration unknowns are on
        record (their features are cached), the threshold is raised as far as needed for the set as a whole to accept no
        more of them than the target allows, as at calibration time: the class pays for its own false accepts, no other
        class's acceptance moves."""
        calibration = prototype_set.calibration
        entry = prototype_set.classes[name]
        if calibration is None or calibration.rule != RULE_OFFSET:
            return prototype_set
        entry = replace(entry, threshold=None)
        loose = replace(prototype_set, classes={**prototype_set.classes, name: entry})
        location = loose.locations()[name]
        entry = replace(entry, location=location)
        threshold = location + calibration.threshold
        unknown = self._calibration_unknowns(calibration)
        if unknown is not None and len(unknown):
            names, sims = self.similarities(unknown, loose)
            top = np.argmax(sims, axis=1)
            best = sims[np.arange(len(sims)), top]
            cut = loose.class_thresholds()
            others_accepted = int(np.sum([best[i] >= cut[names[t]] for i, t in enumerate(top) if names[t] != name]))
            allowed = int(np.floor(calibration.target_false_accept * len(unknown) + 1e-9)) - others_accepted
            mine = np.sort(best[[names[t] == name for t in top]])[::-1]
            if len(mine) > max(allowed, 0):
                threshold = max(threshold, float(mine[max(allowed, 0)]) + MARGIN)
        return replace(prototype_set, classes={**prototype_set.classes, name: replace(entry, threshold=threshold)})

    def _calibration_unknowns(self, calibration: Calibration) -> np.ndarray | None:
        """Raw features of the calibration unknowns, from the feature cache (None when they are not on record)."""
        if calibration.unknowns is None:
            return None
        item = self.store.get_items([calibration.unknowns]).get(calibration.unknowns)
        if item is None or item.text is None:
            return None
        hashes = list(json.loads(item.text)["images"])
        found = self.store.get_many(self.feature_record, hashes)
        if len(found) != len(set(hashes)):
            return None
        return np.stack([found[h] for h in hashes]) if hashes else np.zeros((0, self.embedder.spec.dimension), dtype=np.float32)

    def _store_unknowns(self, hashes: Sequence[str]) -> str:
        text = _canonical({"kind": "character-calibration-unknowns", "model": self.model_id, "images": sorted(hashes)})
        sha = sha256_bytes(text.encode("utf-8"))
        self.store.put_items([Item(sha, "text", text=text, meta={"kind": "character-calibration-unknowns", "count": len(hashes)})])
        return sha

    # ---- prediction -----------------------------------------------------------------------------

    def similarities(self, feats: np.ndarray, prototype_set: PrototypeSet | None = None) -> tuple[list[str], np.ndarray]:
        prototype_set = prototype_set or self.require_current()
        names, protos = self.prototype_matrix(prototype_set)
        return names, self.embed_space(feats, prototype_set) @ protos.T

    def predict_features(self, feats: np.ndarray, prototype_set: PrototypeSet | None = None, top: int = 3) -> list[Prediction]:
        prototype_set = prototype_set or self.require_current()
        names, sims = self.similarities(feats, prototype_set)
        locations = prototype_set.locations()
        shift = np.array([locations[n] for n in names])
        thresholds = prototype_set.class_thresholds()
        cut = np.array([thresholds[n] for n in names])
        out = []
        for row in sims:
            order = np.argsort(-row, kind="stable")
            best = int(order[0])
            score = float(row[best] - shift[best])
            label = names[best] if row[best] >= cut[best] else UNKNOWN
            out.append(Prediction(label, names[best], float(row[best]), [(names[i], float(row[i])) for i in order[:top]], score))
        return out

    def predict(self, images: Sequence[str | Path | Image.Image], prototype_set: PrototypeSet | None = None) -> list[Prediction]:
        """Top class by cosine similarity to the prototypes, or ``unknown`` under the threshold. Paths are decoded with
        the shared loader; nothing is written to the store."""
        decoded = []
        for index, image in enumerate(images):
            try:
                decoded.append(load_image(image if not isinstance(image, str) else Path(image)))
            except ImageInputError as exc:
                raise exc.at(index) from None
        feats = image_features(self.model, decoded, self.embedder.batch_size, self.embedder.device)
        return self.predict_features(feats, prototype_set)

    def calibrate(
        self, known: Sequence[tuple[str | Path, str]], unknown: Sequence[str | Path], target_false_accept: float
    ) -> PrototypeSet:
        """Calibrate the current set's threshold on held-out images of its classes and images of characters it does not
        know, and store the calibrated set (the calibration images' features are cached like any other)."""
        prototype_set = self.require_current()
        known_classes = [c for _, c in known]
        strangers = sorted(set(known_classes) - set(prototype_set.classes))
        if strangers:
            raise PrototypeError(f"known calibration images name classes outside the set: {strangers[:5]}")
        _, known_feats = self.features_of([p for p, _ in known])
        unknown_hashes, unknown_feats = self.features_of(list(unknown))
        # the classes calibrated together share one location, the mean of their member similarities: for them the rule
        # is one cosine threshold, and a class added later is located by how its member similarity compares with it
        together = [e.member_similarity for e in prototype_set.classes.values() if e.location is None and e.member_similarity is not None]
        pooled = float(np.mean(together)) if together else None
        classes = {n: replace(e, location=pooled if e.location is None else e.location) for n, e in prototype_set.classes.items()}
        staged = replace(prototype_set, classes=classes, calibration=None)
        known_pred = self.predict_features(known_feats, staged)
        unknown_pred = self.predict_features(unknown_feats, staged)
        calibration = calibrate(
            np.array([p.score for p in known_pred]),
            np.array([p.top_class == c for p, c in zip(known_pred, known_classes, strict=True)]),
            np.array([p.score for p in unknown_pred]),
            target_false_accept,
            RULE_OFFSET,
        )
        return self.set_calibration(replace(calibration, unknowns=self._store_unknowns(unknown_hashes)), classes)


def rate_with_ci(hits: Sequence[bool], clusters: Sequence[str], seed: int = 0) -> tuple[float, float, float]:
    """A rate and its 95% cluster-bootstrap interval (images of one character are not independent draws)."""
    from aesthetic_platform.stats import cluster_bootstrap

    values = np.asarray(hits, dtype=np.float64)
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")

    def statistic(weights: np.ndarray) -> float:
        return float(np.sum(weights * values) / np.sum(weights)) if np.sum(weights) > 0 else float("nan")

    low, high = cluster_bootstrap(statistic, np.asarray(clusters), seed=seed)
    return float(values.mean()), low, high


@dataclass
class PrototypeReport:
    """What the prototype database does on images it never saw: known classes, imprinted new ones, strangers."""

    model_id: str
    set_sha256: str  # the calibrated base set made current
    classes: int
    calibration: Calibration
    known_accuracy: tuple[float, float, float]  # test split, open set (under the threshold counts as wrong), with CI
    known_closed_accuracy: tuple[float, float, float]  # test split, nearest prototype without the threshold
    novel_accuracy: tuple[float, float, float]  # queries of imprinted characters whose nearest prototype is their own
    novel_open_accuracy: tuple[float, float, float]  # ... and above the threshold (what a caller sees: not ``unknown``)
    novel_per_character: dict[str, float]
    novel_chance: float  # 1 / classes after imprinting
    shots: int
    novel_queries: int
    unknown_rate: tuple[float, float, float]  # held-out strangers answered ``unknown``
    unknown_images: int
    weights_unchanged: bool
    sims: dict[str, list[float]] = field(default_factory=dict)  # top-class scores per population, for the plot
    cosine_rule: dict[str, float] = field(default_factory=dict)  # the same rates under one cosine threshold, for comparison

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {"classes": self.classes, "shots": self.shots, "novel_chance": self.novel_chance,
                                 "weights_unchanged": float(self.weights_unchanged)}
        for name in ("known_accuracy", "known_closed_accuracy", "novel_accuracy", "novel_open_accuracy", "unknown_rate"):
            value, low, high = getattr(self, name)
            out.update({name: value, f"{name}_ci_low": low, f"{name}_ci_high": high})
        out.update({f"calibration_{k}": float(v) for k, v in self.calibration.as_dict().items() if isinstance(v, int | float)})
        out.update({f"cosine_rule_{k}": v for k, v in self.cosine_rule.items()})
        return out

    def summary(self) -> dict[str, Any]:
        return {"model_id": self.model_id, "set": self.set_sha256, **self.metrics(), "novel_per_character": self.novel_per_character}


def unseen_render_config(dataset_dir: Path, count: int, images: int, image_size: int, seed: int) -> Any:
    """Renders of characters outside a rendered dataset: the same design sequence, past the dataset's last character."""
    from aesthetic_platform.characters.config import RenderConfig
    from aesthetic_platform.characters.render import CHARACTERS_FILE, load_characters

    specs = load_characters(dataset_dir)
    design_seed, size = 0, image_size
    meta = Path(dataset_dir) / CHARACTERS_FILE
    if meta.exists():
        rendered = json.loads(meta.read_text()).get("config", {})
        design_seed, size = int(rendered.get("seed", 0)), int(rendered.get("image_size", image_size))
    first = max((s.index for s in specs.values()), default=-1) + 1
    return RenderConfig(characters=count, images_per_character=images, image_size=size, seed=design_seed, first_character=first,
                        image_seed=10_000 + seed)


def evaluate_prototypes(
    db: PrototypeDatabase,
    train: Mapping[str, Sequence[Path]],
    val: Sequence[tuple[Path, str]],
    test: Sequence[tuple[Path, str]],
    strangers: Mapping[str, Sequence[Path]],
    config: Any,
) -> PrototypeReport:
    """Build the set from ``train``, calibrate it on ``val`` against the first strangers, then imprint the next strangers
    with ``add_class`` from ``config.shots`` images each (not committed: the live set stays the calibrated base set), and
    ask the remaining strangers, never imprinted, to come back ``unknown``."""
    before = weights_version(db.model)
    names = sorted(strangers)
    needed = config.calibration_characters + config.novel_characters + config.unknown_test_characters
    if len(names) < needed:
        raise PrototypeError(f"{needed} characters outside training are needed, got {len(names)}")
    calib = names[: config.calibration_characters]
    novel = names[config.calibration_characters : config.calibration_characters + config.novel_characters]
    held_out = names[config.calibration_characters + config.novel_characters : needed]
    db.build(train)
    base = db.calibrate(val, [p for n in calib for p in strangers[n]], config.target_false_accept)

    _, test_feats = db.features_of([p for p, _ in test])
    test_pred = db.predict_features(test_feats, base)
    truth = [c for _, c in test]
    known = rate_with_ci([p.label == c for p, c in zip(test_pred, truth, strict=True)], truth, config.seed)
    closed = rate_with_ci([p.top_class == c for p, c in zip(test_pred, truth, strict=True)], truth, config.seed)

    rng = np.random.default_rng(config.seed)
    imprinted = base
    queries: list[tuple[Path, str]] = []
    for name in novel:
        paths = list(strangers[name])
        if len(paths) <= config.shots:
            raise PrototypeError(f"character {name} has {len(paths)} images; add_class needs {config.shots} plus queries")
        order = rng.permutation(len(paths))
        imprinted = db.add_class(name, [paths[i] for i in order[: config.shots]], base=imprinted, commit=False)
        queries += [(paths[i], name) for i in order[config.shots :]]
    _, query_feats = db.features_of([p for p, _ in queries])
    query_pred = db.predict_features(query_feats, imprinted)
    hits = [p.top_class == c for p, c in zip(query_pred, [c for _, c in queries], strict=True)]
    novel_rate = rate_with_ci(hits, [c for _, c in queries], config.seed)
    open_hits = [p.label == c for p, c in zip(query_pred, [c for _, c in queries], strict=True)]
    novel_open = rate_with_ci(open_hits, [c for _, c in queries], config.seed)
    per_character = {n: float(np.mean([h for h, (_, c) in zip(hits, queries, strict=True) if c == n])) for n in novel}

    unknown_paths = [(p, n) for n in held_out for p in strangers[n]]
    _, unknown_feats = db.features_of([p for p, _ in unknown_paths])
    unknown_pred = db.predict_features(unknown_feats, imprinted)
    unknown = rate_with_ci([not p.known for p in unknown_pred], [n for _, n in unknown_paths], config.seed)

    _, val_feats = db.features_of([p for p, _ in val])
    _, calib_feats = db.features_of([p for n in calib for p in strangers[n]])
    val_pred = db.predict_features(val_feats, base)
    calib_pred = db.predict_features(calib_feats, base)
    sims = {
        "known (validation)": [p.score for p in val_pred],
        "unknown (calibration)": [p.score for p in calib_pred],
        "unknown (held out)": [p.score for p in unknown_pred],
    }
    # the same populations under one cosine threshold for the same target (the rule before per-class offsets)
    val_right = np.array([p.top_class == c for p, (_, c) in zip(val_pred, val, strict=True)])
    plain = calibrate(np.array([p.similarity for p in val_pred]), val_right, np.array([p.similarity for p in calib_pred]),
                      config.target_false_accept).threshold
    cosine_rule = {
        "threshold": plain,
        "known_accuracy": float(np.mean([p.similarity >= plain and p.top_class == c for p, c in zip(test_pred, truth, strict=True)])),
        "novel_open_accuracy": float(np.mean([p.similarity >= plain and h for p, h in zip(query_pred, hits, strict=True)])),
        "unknown_rate": float(np.mean([p.similarity < plain for p in unknown_pred])),
    }
    assert base.calibration is not None
    return PrototypeReport(
        model_id=db.model_id, set_sha256=base.sha256, classes=len(base.classes), calibration=base.calibration,
        known_accuracy=known, known_closed_accuracy=closed, novel_accuracy=novel_rate, novel_open_accuracy=novel_open,
        novel_per_character=per_character,
        novel_chance=1.0 / len(imprinted.classes), shots=config.shots, novel_queries=len(queries), unknown_rate=unknown,
        unknown_images=len(unknown_paths), weights_unchanged=weights_version(db.model) == before, sims=sims, cosine_rule=cosine_rule,
    )


@dataclass
class TrainedClassifier:
    """A saved classifier with the split it was trained on and where its dataset lives."""

    model: Any  # characters.classifier.CharacterClassifier
    model_dir: Path
    dataset_dir: Path
    split: Any  # characters.data.Split

    def part(self, name: str) -> list[tuple[Path, str]]:
        return [(path, self.split.classes[label]) for path, label in self.split.items(name, self.dataset_dir)]

    def by_class(self, name: str) -> dict[str, list[Path]]:
        out: dict[str, list[Path]] = {}
        for path, label in self.part(name):
            out.setdefault(label, []).append(path)
        return out


def latest_classifier_dir(root: DataRoot) -> Path | None:
    """The newest saved classifier under the data root (None when there is none): the CLI's default when no
    ``--model`` is given. The assets never guess; they take ``character_classifier``'s output."""
    folder = root.character_classifiers
    found = [p.parent for p in folder.glob("*/model.safetensors")] if folder.is_dir() else []
    return max(found, key=lambda p: (p / "model.safetensors").stat().st_mtime) if found else None


def load_trained(model_dir: str | Path, device: str = "", root: DataRoot | None = None) -> TrainedClassifier:
    """The classifier saved by ``train_classifier`` and its split (``split.json`` and ``result.json`` beside the weights).

    With ``root``, the dataset path recorded at training is read against it, so a copied or moved data root
    finds its own copy of the dataset (``DataRoot.resolve``)."""
    from aesthetic_platform.characters.classifier import CharacterClassifier, load_result_summary
    from aesthetic_platform.characters.data import load_split

    model_dir = Path(model_dir)
    model = CharacterClassifier.from_pretrained(model_dir, device=resolve_device(device))
    split = load_split(model_dir)
    if split is None:
        raise PrototypeError(f"{model_dir} has no split.json: the held-out images of its training are unknown")
    stored = load_result_summary(model_dir)["dataset_dir"]
    dataset_dir = root.resolve(stored) if root is not None else Path(stored)
    if not dataset_dir.is_dir():
        raise PrototypeError(f"the dataset {dataset_dir} that {model_dir} was trained on is gone")
    return TrainedClassifier(model, model_dir, dataset_dir, split)


def render_strangers(trained: TrainedClassifier, config: Any, work_dir: Path) -> dict[str, list[Path]]:
    """Renders of characters outside the training set (past its last design), cached under ``work_dir``."""
    from aesthetic_platform.characters.render import render_dataset

    count = config.calibration_characters + config.novel_characters + config.unknown_test_characters
    render = unseen_render_config(trained.dataset_dir, count, config.images_per_character, trained.model.config.image_size, config.seed)
    folder = Path(work_dir) / f"unseen-{render.seed}-{render.first_character}-{render.image_seed}-{render.image_size}"
    summary = render_dataset(folder, render)
    return {spec.name: sorted(summary.class_dir(spec.name).glob("*.png")) for spec in summary.characters}


def run_prototypes(
    store: Store, model_dir: str | Path, config: Any, work_dir: Path, root: DataRoot | None = None
) -> tuple[PrototypeReport, PrototypeDatabase]:
    """Build, calibrate and evaluate the prototype set of a saved classifier; the calibrated set becomes current."""
    trained = load_trained(model_dir, config.device, root)
    strangers = render_strangers(trained, config, work_dir)
    db = PrototypeDatabase(store, trained.model, config.batch_size, config.device)
    report = evaluate_prototypes(db, trained.by_class("train"), trained.part("val"), trained.part("test"), strangers, config)
    return report, db


def prototype_plots(report: PrototypeReport, folder: Path) -> dict[str, Path]:
    """Histograms of the top-class score (cosine minus the class's member similarity) of known, calibration and held-out
    unknown images, with the threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from aesthetic_platform.atomic import write_with

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for label, values in report.sims.items():
        ax.hist(values, bins=30, alpha=0.5, label=f"{label} (n={len(values)})")
    ax.axvline(report.calibration.threshold, color="black", linestyle="--",
               label=f"threshold {report.calibration.threshold:.3f} (FAR {report.calibration.target_false_accept:.0%})")
    ax.set_xlabel("cosine to the nearest prototype minus its member similarity")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = write_with(folder / "similarity_histogram.png", lambda p: fig.savefig(p, dpi=110, format="png"))
    plt.close(fig)
    return {"similarity_histogram": path}


def _check_name(name: str) -> None:
    if not name or not name.strip() or name != name.strip() or len(name) > 200:
        raise PrototypeError(f"class name {name!r} must be 1-200 characters without surrounding spaces")
    if name == UNKNOWN:
        raise PrototypeError(f"{UNKNOWN!r} is reserved for images under the threshold")


__all__ = [
    "CURRENT", "RULE_COSINE", "RULE_OFFSET", "Calibration", "CharacterFeatureEmbedder", "ClassEntry", "EmbeddingError",
    "FEATURE_MODEL", "PROTOTYPE_MODEL", "Prediction", "PrototypeDatabase", "PrototypeError", "PrototypeReport", "PrototypeSet",
    "SET_TASK", "TrainedClassifier", "UNKNOWN", "calibrate", "evaluate_prototypes", "image_features", "latest_classifier_dir",
    "load_trained", "member_similarity", "prototype_plots", "rate_with_ci", "render_strangers", "run_prototypes",
    "unseen_render_config", "weights_version",
]
