"""Staged dedup of the ingested photos: exact -> near -> same shoot -> DBSCAN, keep the sharpest.

Every kept ingest image is analysed once at a common size (long side ``analysis_side``, so
a resized copy looks the same as its original): sharpness (variance of the Laplacian),
64-bit perceptual hashes (``imagehash.phash``) of the image, its mirror and its centre, the largest
face (see ``faces``), its descriptor and grey patch, and the body pose when MediaPipe is
installed. Then, over all pairs:

1. **exact**: same stored pixels (or same file bytes);
2. **near**: pHash Hamming distance <= ``phash_max_distance``, the smallest over the full
   images, the mirrored image when ``hash_mirrored`` (a horizontal flip is the same picture)
   and the central ``centre_hash_share`` of either image against the other (a slightly
   cropped copy is the centre of its original);
3. **same shoot**: both largest faces sit within ``bbox_tol_c`` (centre) and ``bbox_tol_wh``
   (width, height) of each other, as shares of the image side, and
   cosine >= ``face_sim_th2`` with SSIM >= ``face_ssim_th1``, or
   ``face_sim_th1`` <= cosine < ``face_sim_th2`` with SSIM >= ``face_ssim_th2``;
   with a pose model, pose similarity >= ``pose_sim_th`` too. Each test is also made
   against the mirrored face, so a flipped frame of the shoot counts;
4. **DBSCAN** (``metric="precomputed"``, ``dbscan_eps``, ``dbscan_min_samples``) over a
   combined distance: 0 for pairs linked by stages 1-3, else the mean of the hash distance
   (the stage-2 Hamming distance / 32, capped at 1) and, when both have faces, the
   face distance (1 - cosine, capped to [0, 1]).

   Stage links always join clusters, whatever ``dbscan_min_samples`` says.

What an image measured is kept in ``analysis/`` of the work folder, keyed by its pixels and by
every setting and model that shapes the measurement (``analysis_side``, ``centre_hash_share``,
detector, face embedder, pose model). Tuning a threshold or the clustering therefore re-runs
only the pair tests and DBSCAN; face detection (most of the stage's time) is not repeated.

Within a cluster, exact and near copies collapse to one picture (the largest source, then
the largest file, i.e. the least compressed, then the sharpest: the variance of the
Laplacian alone would favour a heavily recompressed copy for its block edges); of the
remaining pictures the ``keep_per_cluster`` sharpest are kept. Every dropped image names
the stage, the measured numbers and the kept image it lost to.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import imagehash
import numpy as np
from PIL import Image, ImageOps
from sklearn.cluster import DBSCAN

from aesthetic_platform.atomic import write_bytes
from aesthetic_platform.images import REDUCE_MARGIN, load_image
from aesthetic_platform.lora.config import DedupConfig
from aesthetic_platform.lora.faces import (
    FaceDetector,
    FaceEmbedder,
    PoseEstimator,
    cosine,
    default_detector,
    face_embedder,
    face_patch,
    pose_estimator,
    pose_similarity,
    ssim,
)
from aesthetic_platform.lora.schemas import DEDUP_DECISIONS, DEDUP_TABLE, INGEST_RECORDS, INGEST_TABLE, DedupDecision, IngestRecord

Progress = Callable[[int, int, str], None]
#: Hamming distance treated as "unrelated" when the hash distance is scaled to [0, 1] (two random 64-bit hashes differ in ~32).
HASH_SCALE = 32.0
_STAGE_ORDER = {"exact": 0, "near": 1, "same_shoot": 2, "cluster": 3}
ANALYSIS_DIR = "analysis"
#: Bump when ``analyse`` measures differently: every cached analysis is then recomputed.
ANALYSIS_VERSION = 1
_ARRAYS = ("embedding", "embedding_mirror", "patch", "patch_mirror", "pose")


@dataclass
class Analysis:
    """What dedup measured on one image (box in stored-image pixels; ``rel_box`` as shares of the analysis image)."""

    record: IngestRecord
    sharpness: float
    phash: int
    phash_mirror: int
    phash_centre: int
    phash_centre_mirror: int
    faces: int = 0
    face_box: tuple[int, int, int, int] | None = None
    rel_box: tuple[float, float, float, float] | None = None  # centre x, centre y, width, height
    embedding: np.ndarray | None = None
    embedding_mirror: np.ndarray | None = None
    patch: np.ndarray | None = None
    patch_mirror: np.ndarray | None = None
    pose: np.ndarray | None = None


@dataclass
class PairLink:
    stage: str
    detail: str


@dataclass
class DedupResult:
    work_dir: Path
    table_path: Path
    decisions: list[DedupDecision] = field(default_factory=list)
    analyses: list[Analysis] = field(default_factory=list, repr=False)  # what was measured, for re-deciding with other thresholds

    @property
    def kept(self) -> int:
        return sum(1 for d in self.decisions if d.kept)

    @property
    def dropped(self) -> int:
        return sum(1 for d in self.decisions if not d.kept)

    @property
    def clusters(self) -> int:
        return len({d.cluster for d in self.decisions})


def analysis_image(path: Path, side: int) -> np.ndarray:
    """RGB uint8 array with its long side exactly ``side`` (decoded reduced, then resized)."""
    image = load_image(path, fit_pixels=math.ceil(side * side / REDUCE_MARGIN**2))
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if image.size != size:
        image = image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    return np.asarray(image)


def sharpness_of(rgb: np.ndarray) -> float:
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def phash_int(image: Image.Image) -> int:
    return int(str(imagehash.phash(image)), 16)


def analyse(
    record: IngestRecord,
    work_dir: Path,
    config: DedupConfig,
    detector: FaceDetector,
    embedder: FaceEmbedder,
    poses: PoseEstimator | None,
) -> Analysis:
    rgb = analysis_image(work_dir / record.path, config.analysis_side)
    pil = Image.fromarray(rgb)
    dx, dy = round(pil.width * (1 - config.centre_hash_share) / 2), round(pil.height * (1 - config.centre_hash_share) / 2)
    centre = pil.crop((dx, dy, pil.width - dx, pil.height - dy))
    result = Analysis(
        record, sharpness_of(rgb), phash_int(pil), phash_int(ImageOps.mirror(pil)), phash_int(centre), phash_int(ImageOps.mirror(centre))
    )
    faces = detector.detect(rgb)
    result.faces = len(faces)
    if faces:
        face = faces[0]
        height, width = rgb.shape[:2]
        back = record.width / width
        left, top, right, bottom = (round(v * back) for v in face.box)
        result.face_box = (max(0, left), max(0, top), min(record.width, right), min(record.height, bottom))
        result.rel_box = (
            (face.box[0] + face.box[2]) / 2 / width,
            (face.box[1] + face.box[3]) / 2 / height,
            face.width / width,
            face.height / height,
        )
        result.embedding = embedder.embed(rgb, face)
        result.embedding_mirror = embedder.embed(rgb, face, mirror=True)
        result.patch = face_patch(rgb, face.box)
        result.patch_mirror = face_patch(rgb, face.box, mirror=True)
    if poses is not None:
        result.pose = poses.landmarks(rgb)
    return result


def hamming_matrix(rows: list[int], cols: list[int] | None = None) -> np.ndarray:
    """Bit differences of every (row hash, column hash) pair of 64-bit hashes."""
    left = np.array(rows, dtype=np.uint64)
    right = left if cols is None else np.array(cols, dtype=np.uint64)
    xor = left[:, None] ^ right[None, :]
    return np.unpackbits(xor.view(np.uint8).reshape(len(left), len(right), 8), axis=-1).sum(axis=-1).astype(np.int64)


def hash_distances(items: list[Analysis], config: DedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """Smallest Hamming distance of every pair over the compared views, and which view gave it (index into ``HASH_VIEWS``).

    Views: the two full images; one full against the other mirrored; one full against the
    other's centre, either way round (a slight crop of one is the centre of the other);
    one full against the other's mirrored centre.
    """
    full = [a.phash for a in items]
    pairs: list[np.ndarray] = [hamming_matrix(full)]
    if config.hash_mirrored:
        pairs.append(hamming_matrix(full, [a.phash_mirror for a in items]))
    else:
        pairs.append(np.full((len(items), len(items)), 64, dtype=np.int64))
    if config.centre_hash_share < 1:
        centre = hamming_matrix(full, [a.phash_centre for a in items])
        pairs.append(np.minimum(centre, centre.T))
        if config.hash_mirrored:
            centre_mirror = hamming_matrix(full, [a.phash_centre_mirror for a in items])
            pairs.append(np.minimum(centre_mirror, centre_mirror.T))
    stack = np.stack(pairs)
    return stack.min(axis=0), stack.argmin(axis=0)


HASH_VIEWS = ("", " (mirrored)", " (one is a central crop of the other)", " (mirrored; one is a central crop of the other)")


def same_shoot(a: Analysis, b: Analysis, config: DedupConfig) -> PairLink | None:
    """The two-threshold face rule (module docstring, stage 3), direct and mirrored; None when not the same shoot."""
    if a.rel_box is None or b.rel_box is None or a.embedding is None or b.embedding is None:
        return None
    if a.pose is not None and b.pose is not None:
        pose = pose_similarity(a.pose, b.pose)
        if pose < config.pose_sim_th:
            return None
    else:
        pose = None
    best: PairLink | None = None
    for mirrored in (False, True):
        bx, by, bw, bh = b.rel_box
        if mirrored:
            bx = 1.0 - bx
        ax, ay, aw, ah = a.rel_box
        if abs(ax - bx) > config.bbox_tol_c or abs(ay - by) > config.bbox_tol_c:
            continue
        if abs(aw - bw) > config.bbox_tol_wh or abs(ah - bh) > config.bbox_tol_wh:
            continue
        other = b.embedding_mirror if mirrored else b.embedding
        other_patch = b.patch_mirror if mirrored else b.patch
        assert other is not None and other_patch is not None and a.patch is not None
        sim = cosine(a.embedding, other)
        if sim < config.face_sim_th1:
            continue
        structural = ssim(a.patch, other_patch)
        needed = config.face_ssim_th1 if sim >= config.face_sim_th2 else config.face_ssim_th2
        if structural >= needed:
            detail = f"face cosine {sim:.3f}, SSIM {structural:.3f} (>= {needed})" + (", mirrored" if mirrored else "")
            if pose is not None:
                detail += f", pose {pose:.3f}"
            best = PairLink("same_shoot", detail)
            break
    return best


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def link_pairs(items: list[Analysis], config: DedupConfig) -> tuple[dict[tuple[int, int], PairLink], np.ndarray]:
    """Stage links for every linked pair (i < j) and the combined distance matrix."""
    n = len(items)
    links: dict[tuple[int, int], PairLink] = {}
    if n == 0:
        return links, np.zeros((0, 0))
    hashes, views = hash_distances(items, config)
    distance = np.minimum(1.0, hashes / HASH_SCALE)
    for i in range(n):
        for j in range(i + 1, n):
            a, b = items[i], items[j]
            if a.record.pixel_sha256 == b.record.pixel_sha256 or a.record.sha256 == b.record.sha256:
                same = "same file" if a.record.sha256 == b.record.sha256 else "same pixels"
                links[(i, j)] = PairLink("exact", same)
            elif hashes[i, j] <= config.phash_max_distance:
                links[(i, j)] = PairLink("near", f"perceptual-hash distance {hashes[i, j]}/64{HASH_VIEWS[views[i, j]]}")
            elif (link := same_shoot(a, b, config)) is not None:
                links[(i, j)] = link
            if a.embedding is not None and b.embedding is not None:
                assert a.embedding is not None and b.embedding_mirror is not None
                face = 1.0 - max(cosine(a.embedding, b.embedding), cosine(a.embedding, b.embedding_mirror))
                distance[i, j] = distance[j, i] = (distance[i, j] + min(1.0, max(0.0, face))) / 2
    for i, j in links:
        distance[i, j] = distance[j, i] = 0.0
    np.fill_diagonal(distance, 0.0)
    return links, distance


def dedup(work_dir: Path, config: DedupConfig, progress: Progress | None = None) -> DedupResult:
    """Read ingest.parquet and images/, write dedup.parquet (one decision per kept ingest image)."""
    work_dir = Path(work_dir)
    ingested = INGEST_RECORDS.rows(INGEST_RECORDS.read(work_dir / INGEST_TABLE))
    records = [r for r in ingested if r.status == "kept"]
    detector, embedder, poses = default_detector(), face_embedder(config.face_embedder, config.insightface_root), pose_estimator()
    items = []
    for done, record in enumerate(records, start=1):
        items.append(cached_analysis(record, work_dir, config, detector, embedder, poses))
        if progress:
            progress(done, len(records), record.source_name)
    decisions = decide(items, config)
    table_path = DEDUP_DECISIONS.write(decisions, work_dir / DEDUP_TABLE)
    return DedupResult(work_dir=work_dir, table_path=table_path, decisions=decisions, analyses=items)


def cluster_labels(distance: np.ndarray, config: DedupConfig, links: dict[tuple[int, int], PairLink] | None = None) -> list[int]:
    """DBSCAN clusters over the combined distance, joined with every stage link (so ``dbscan_min_samples`` > 2 never
    separates two linked copies); unclustered images get clusters of their own, numbered in order of first image."""
    n = len(distance)
    if n == 0:
        return []
    raw = DBSCAN(eps=config.dbscan_eps, min_samples=config.dbscan_min_samples, metric="precomputed").fit_predict(distance)
    joined = _UnionFind(n)
    first: dict[int, int] = {}
    for i, label in enumerate(raw):
        if label >= 0:
            joined.union(i, first.setdefault(int(label), i))
    for i, j in links or {}:
        joined.union(i, j)
    renumber: dict[int, int] = {}
    return [renumber.setdefault(joined.find(i), len(renumber)) for i in range(n)]


def decide(items: list[Analysis], config: DedupConfig) -> list[DedupDecision]:
    """Cluster, collapse exact/near copies, keep the ``keep_per_cluster`` sharpest pictures per cluster."""
    n = len(items)
    links, distance = link_pairs(items, config)
    labels = cluster_labels(distance, config, links)

    def link(i: int, j: int) -> PairLink | None:
        return links.get((min(i, j), max(i, j)))

    pictures = _UnionFind(n)
    for (i, j), found in links.items():
        if found.stage in ("exact", "near"):
            pictures.union(i, j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(pictures.find(i), []).append(i)

    def source_pixels(i: int) -> int:
        record = items[i].record
        return (record.source_width or record.width) * (record.source_height or record.height)

    representative: dict[int, int] = {}
    for members in groups.values():
        # The best copy of one picture: the largest original, then the most bytes (least compressed), then the sharpest.
        rep = max(members, key=lambda i: (source_pixels(i), items[i].record.bytes, items[i].sharpness, -i))
        for i in members:
            representative[i] = rep
    kept: set[int] = set()
    rank: dict[int, tuple[int, int]] = {}
    by_cluster: dict[int, list[int]] = {}
    for i in range(n):
        by_cluster.setdefault(labels[i], []).append(i)
    for members in by_cluster.values():
        reps = sorted({representative[i] for i in members}, key=lambda i: (-items[i].sharpness, -source_pixels(i), i))
        for position, i in enumerate(reps):
            rank[i] = (position + 1, len(reps))
        kept.update(reps[: config.keep_per_cluster])

    decisions = []
    for i, item in enumerate(items):
        members = by_cluster[labels[i]]
        if i in kept:
            stages = [hit.stage for j in members if j != i and (hit := link(i, j)) is not None]
            stage = min(stages, key=_STAGE_ORDER.__getitem__) if stages else ("cluster" if len(members) > 1 else "unique")
            position, total = rank[i]
            copies = len(groups[pictures.find(i)])
            parts = []
            if copies > 1:
                parts.append(f"best of {copies} copies of one picture (largest source, then largest file)")
            if total > 1:
                parts.append(f"sharpest {position} of {total} pictures in the cluster (sharpness {item.sharpness:.1f})")
            reason = "kept: " + "; ".join(parts) if parts else "unique"
            decisions.append(_decision(item, labels[i], True, stage, reason, ""))
            continue
        rep = representative[i]
        if rep != i:
            pair = link(i, rep) or _path_link(i, rep, groups[pictures.find(i)], link)
            winner = rep if rep in kept else _nearest_kept(rep, members, kept, distance, items)
            reason = f"{_STAGE_WORDS[pair.stage]} of {items[rep].record.image_id}: {pair.detail}"
            if winner != rep:
                reason += f"; that picture lost to {items[winner].record.image_id}"
            decisions.append(_decision(item, labels[i], False, pair.stage, reason, items[winner].record.image_id))
            continue
        winner = _nearest_kept(i, members, kept, distance, items)
        direct = link(i, winner)
        stage = direct.stage if direct is not None and direct.stage == "same_shoot" else "cluster"
        detail = direct.detail if direct is not None else f"combined distance {distance[i, winner]:.3f} (DBSCAN eps {config.dbscan_eps})"
        position, total = rank[i]
        reason = (
            f"{_STAGE_WORDS[stage]} {items[winner].record.image_id}: {detail}; sharpness {item.sharpness:.1f} ranks {position} of {total} "
            f"pictures, keep_per_cluster={config.keep_per_cluster}"
        )
        decisions.append(_decision(item, labels[i], False, stage, reason, items[winner].record.image_id))
    return decisions


_STAGE_WORDS = {
    "exact": "exact duplicate",
    "near": "near duplicate",
    "same_shoot": "same shoot as",
    "cluster": "clustered with",
}


def _path_link(i: int, rep: int, members: list[int], link: Callable[[int, int], PairLink | None]) -> PairLink:
    """A copy linked to its picture's representative only through other copies: report the chain's first step."""
    steps = [pair for j in members if j != i and (pair := link(i, j)) is not None and pair.stage in ("exact", "near")]
    step = min(steps, key=lambda p: _STAGE_ORDER[p.stage])
    return PairLink(step.stage, f"{step.detail} to another copy of the same picture")


def _nearest_kept(i: int, members: list[int], kept: set[int], distance: np.ndarray, items: list[Analysis]) -> int:
    candidates = [j for j in members if j in kept and j != i]
    return min(candidates, key=lambda j: (distance[i, j], -items[j].sharpness, j))


def _decision(item: Analysis, cluster: int, kept: bool, stage: str, reason: str, lost_to: str) -> DedupDecision:
    return DedupDecision.model_validate(
        {
            "image_id": item.record.image_id,
            "cluster": cluster,
            "kept": kept,
            "stage": stage,
            "reason": reason,
            "lost_to": lost_to,
            "sharpness": round(item.sharpness, 3),
            "face_box": list(item.face_box) if item.face_box else [],
            "faces": item.faces,
            "phash": f"{item.phash:016x}",
        }
    )


def analysis_key(record: IngestRecord, config: DedupConfig, detector: FaceDetector, embedder: FaceEmbedder,
                 poses: PoseEstimator | None) -> str:
    """Everything the measurement of one image depends on: its pixels, the analysis settings and the models."""
    inputs = {
        "version": ANALYSIS_VERSION, "pixels": record.pixel_sha256 or record.sha256, "width": record.width, "height": record.height,
        "analysis_side": config.analysis_side, "centre_hash_share": config.centre_hash_share,
        "detector": detector.name, "embedder": embedder.name, "pose": poses.name if poses is not None else None,
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def cached_analysis(
    record: IngestRecord, work_dir: Path, config: DedupConfig, detector: FaceDetector, embedder: FaceEmbedder,
    poses: PoseEstimator | None,
) -> Analysis:
    """``analyse``, or what it measured before on the same pixels with the same settings and models."""
    path = work_dir / ANALYSIS_DIR / f"{analysis_key(record, config, detector, embedder, poses)}.npz"
    if path.exists():
        try:
            return _read_analysis(path, record)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # unreadable (truncated, or written by another version): measure again and replace it
    result = analyse(record, work_dir, config, detector, embedder, poses)
    _write_analysis(path, result)
    return result


def _write_analysis(path: Path, item: Analysis) -> None:
    scalars = {
        "sharpness": item.sharpness, "faces": item.faces, "face_box": item.face_box, "rel_box": item.rel_box,
        "phash": [format(h, "016x") for h in (item.phash, item.phash_mirror, item.phash_centre, item.phash_centre_mirror)],
    }
    arrays = {name: value for name in _ARRAYS if (value := getattr(item, name)) is not None}
    buffer = io.BytesIO()
    np.savez(buffer, scalars=np.array(json.dumps(scalars)), **arrays)
    write_bytes(path, buffer.getvalue())


def _read_analysis(path: Path, record: IngestRecord) -> Analysis:
    with np.load(path, allow_pickle=False) as stored:
        scalars = json.loads(str(stored["scalars"]))
        arrays = {name: stored[name] for name in _ARRAYS if name in stored.files}
    phash, mirror, centre, centre_mirror = (int(h, 16) for h in scalars["phash"])
    item = Analysis(record, float(scalars["sharpness"]), phash, mirror, centre, centre_mirror, faces=int(scalars["faces"]))
    item.face_box = tuple(scalars["face_box"]) if scalars["face_box"] else None
    item.rel_box = tuple(scalars["rel_box"]) if scalars["rel_box"] else None
    for name, value in arrays.items():
        setattr(item, name, value)
    return item
