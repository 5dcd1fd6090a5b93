"""Dedup on real photos: near-duplicate variants cluster by source, same-shoot frames keep the sharpest, every drop says why."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from aesthetic_platform.lora.config import DedupConfig, IngestConfig
from aesthetic_platform.lora.dedup import Analysis, decide, dedup, same_shoot
from aesthetic_platform.lora.faces import FACE_SIZE, face_embedder, ssim
from aesthetic_platform.lora.ingest import ingest
from aesthetic_platform.lora.schemas import DEDUP_DECISIONS, IngestRecord
from tests.lora.conftest import build_zip, encoded, photo, variants

#: Tests analyse at a smaller size than the default (768) to stay fast; the rules are the same.
FAST = DedupConfig(analysis_side=384)
SOURCES = ("astronaut", "coffee", "chelsea", "camera", "rocket")


def _run(tmp_path: Path, members: list[tuple[str, bytes]], config: DedupConfig = FAST):
    work = tmp_path / "work"
    ingested = ingest(build_zip(tmp_path / "in.zip", members), work, IngestConfig())
    name_of = {r.image_id: r.source_name for r in ingested.records}
    return work, dedup(work, config), name_of


def _partition(decisions, name_of) -> set[frozenset[str]]:
    groups: dict[int, set[str]] = {}
    for decision in decisions:
        groups.setdefault(decision.cluster, set()).add(name_of[decision.image_id])
    return {frozenset(g) for g in groups.values()}


@pytest.mark.slow
def test_near_duplicate_variants_of_real_photos_cluster_by_source(tmp_path: Path):
    members = [(f"{name}/{kind}.jpg", encoded(image)) for name in SOURCES for kind, image in variants(photo(name)).items()]
    moon = encoded(photo("moon"))
    members += [("moon/original.jpg", moon), ("moon/copy.jpg", moon)]
    work, result, name_of = _run(tmp_path, members)

    truth = {frozenset(m for m, _ in members if m.startswith(f"{name}/")) for name in (*SOURCES, "moon")}
    assert _partition(result.decisions, name_of) == truth
    by_name = {name_of[d.image_id]: d for d in result.decisions}
    kept = {d.image_id for d in result.decisions if d.kept}
    # Exact and near copies collapse to one picture per source photo.
    assert len(kept) == len(SOURCES) + 1
    copy = by_name["moon/copy.jpg"]
    original = by_name["moon/original.jpg"]
    assert original.kept and original.stage == "exact"
    assert not copy.kept and copy.stage == "exact" and copy.lost_to == original.image_id and "same file" in copy.reason
    for decision in result.decisions:
        if not decision.kept:
            assert decision.lost_to in kept and decision.reason
            assert by_name[name_of[decision.lost_to]].cluster == decision.cluster
            assert decision.stage in ("exact", "near")
    flipped = [d for n, d in by_name.items() if n.endswith("flipped.jpg") and not d.kept]
    assert flipped and all("mirrored" in d.reason for d in flipped)
    assert by_name["astronaut/original.jpg"].faces == 1 and len(by_name["astronaut/original.jpg"].face_box) == 4
    assert DEDUP_DECISIONS.read(work / "dedup.parquet").height == len(members)

    # Without the mirrored and centre hashes, a plain pHash misses the flipped and cropped copies.
    plain = decide(result.analyses, FAST.model_copy(update={"hash_mirrored": False, "centre_hash_share": 1.0}))
    split = _partition(plain, name_of)
    assert split != truth
    group_of = {name: group for group in split for name in group}
    assert any(f"{name}/flipped.jpg" not in group_of[f"{name}/original.jpg"] for name in SOURCES)


def _burst() -> list[tuple[str, Image.Image]]:
    """Four frames of one shoot: the same head and pose on different backgrounds, at decreasing sharpness."""
    head = photo("astronaut").crop((130, 20, 320, 210))
    frames = []
    for background, blur in (("coffee", 0.0), ("retina", 0.5), ("chelsea", 1.0), ("immunohistochemistry", 0.25)):
        frame = photo(background).resize((512, 512))
        frame.paste(head, (130, 20))
        frames.append((f"shoot/{background}.jpg", frame.filter(ImageFilter.GaussianBlur(blur)) if blur else frame))
    return frames


@pytest.mark.slow
def test_same_shoot_frames_keep_the_two_sharpest_and_name_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    members = [(name, encoded(frame, quality=95)) for name, frame in _burst()] + [("other/rocket.jpg", encoded(photo("rocket")))]
    work, result, name_of = _run(tmp_path, members)
    by_name = {name_of[d.image_id]: d for d in result.decisions}
    shoot = [by_name[name] for name, _ in members if name.startswith("shoot/")]

    assert len({d.cluster for d in shoot}) == 1 and by_name["other/rocket.jpg"].cluster != shoot[0].cluster
    assert by_name["other/rocket.jpg"].stage == "unique" and by_name["other/rocket.jpg"].kept
    ranked = sorted(shoot, key=lambda d: -d.sharpness)
    assert [d.kept for d in ranked] == [True, True, False, False]
    winners = {d.image_id for d in ranked[:2]}
    for loser in ranked[2:]:
        assert loser.stage in ("same_shoot", "cluster") and loser.lost_to in winners
        assert "keep_per_cluster=2" in loser.reason and f"sharpness {loser.sharpness:.1f}" in loser.reason
    assert any("face cosine" in d.reason for d in ranked[2:])

    # A re-run gives the same table, from the cached analyses (no face is detected again);
    # keep_per_cluster=1 keeps only the sharpest.
    from aesthetic_platform.lora import dedup as dedup_module

    measured = dedup_module.analyse
    monkeypatch.setattr(dedup_module, "analyse", lambda *a, **k: pytest.fail("re-analysed an unchanged image"))
    again = dedup(work, FAST)
    assert DEDUP_DECISIONS.read(work / "dedup.parquet").equals(DEDUP_DECISIONS.frame(again.decisions))
    assert [(d.image_id, d.kept, d.cluster) for d in again.decisions] == [(d.image_id, d.kept, d.cluster) for d in result.decisions]
    single = {d.image_id: d.kept for d in decide(result.analyses, FAST.model_copy(update={"keep_per_cluster": 1}))}
    assert [single[d.image_id] for d in ranked] == [True, False, False, False]
    # Stage links join clusters even when DBSCAN alone would call the frames noise.
    strict = decide(result.analyses, FAST.model_copy(update={"dbscan_min_samples": 10}))
    assert len({d.cluster for d in strict if d.image_id in {x.image_id for x in shoot}}) == 1
    assert sum(d.kept for d in strict) == 3
    # A threshold change reuses the measurements too; a new analysis size measures every image again.
    tuned = dedup(work, FAST.model_copy(update={"keep_per_cluster": 1}))
    assert sum(d.kept for d in tuned.decisions) == 2
    calls: list[str] = []
    monkeypatch.setattr(dedup_module, "analyse", lambda record, *a: calls.append(record.image_id) or measured(record, *a))
    cached = set((work / "analysis").glob("*.npz"))
    dedup(work, FAST.model_copy(update={"analysis_side": 320}))  # another measurement: every image again
    assert len(calls) == len(members)
    # a damaged cache entry is measured again, not trusted and not fatal
    calls.clear()
    damaged = sorted(set((work / "analysis").glob("*.npz")) - cached)[0]
    damaged.write_bytes(damaged.read_bytes()[:40])
    again_320 = dedup(work, FAST.model_copy(update={"analysis_side": 320}))
    assert len(calls) == 1 and len(again_320.decisions) == len(members)


def _analysis(name: str, cos: float, box: tuple[float, float, float, float], patch: np.ndarray, mirror_cos: float = 0.0) -> Analysis:
    record = IngestRecord(image_id=name, source_name=name, sha256=name, pixel_sha256=name, path=f"images/{name}.png", status="kept")
    angle = math.acos(cos)
    mirror_angle = math.acos(mirror_cos)
    return Analysis(
        record=record,
        sharpness=1.0,
        phash=0,
        phash_mirror=0,
        phash_centre=0,
        phash_centre_mirror=0,
        faces=1,
        face_box=(0, 0, 1, 1),
        rel_box=box,
        embedding=np.array([math.cos(angle), math.sin(angle), 0.0], dtype=np.float32),
        embedding_mirror=np.array([math.cos(mirror_angle), 0.0, math.sin(mirror_angle)], dtype=np.float32),
        patch=patch,
        patch_mirror=patch[:, ::-1].copy(),
    )


def test_two_threshold_face_rule_and_box_tolerance():
    rng = np.random.default_rng(0)
    base = rng.random((FACE_SIZE, FACE_SIZE)).astype(np.float32)
    other = np.clip(base + rng.normal(0, 0.08, base.shape), 0, 1).astype(np.float32)
    measured = ssim(base, other)
    box = (0.4, 0.3, 0.2, 0.2)
    anchor = _analysis("a", 1.0, box, base)

    def linked(cos: float, config: DedupConfig, at=box, mirror_cos: float = 0.0) -> bool:
        return same_shoot(anchor, _analysis("b", cos, at, other, mirror_cos), config) is not None

    loose = DedupConfig(face_ssim_th1=measured - 0.01, face_ssim_th2=measured + 0.01)
    strict = DedupConfig(face_ssim_th1=measured + 0.01, face_ssim_th2=measured + 0.02)
    assert linked(0.90, loose)  # cosine >= th2: the lower SSIM threshold suffices
    assert not linked(0.90, strict)
    assert not linked(0.80, loose)  # th1 <= cosine < th2: needs the higher SSIM threshold
    assert linked(0.80, DedupConfig(face_ssim_th1=measured - 0.02, face_ssim_th2=measured - 0.01))
    assert not linked(0.70, DedupConfig(face_ssim_th1=0.0, face_ssim_th2=0.0))  # below th1: never
    shifted = (0.4 + 0.11, 0.3, 0.2, 0.2)
    assert not linked(0.95, loose, at=shifted)  # centre moved more than bbox_tol_c
    assert not linked(0.95, loose, at=(0.4, 0.3, 0.2 + 0.11, 0.2))  # width changed more than bbox_tol_wh
    assert linked(0.95, loose.model_copy(update={"bbox_tol_c": 0.12}), at=shifted)
    # A mirrored frame: its box mirrored and its mirrored face embedding match.
    mirrored_box = (1 - 0.4, 0.3, 0.2, 0.2)
    link = same_shoot(
        anchor,
        _analysis("b", 0.0, mirrored_box, base[:, ::-1].copy(), mirror_cos=0.95),
        DedupConfig(),
    )
    assert link is not None and "mirrored" in link.detail


def test_insightface_is_used_only_when_its_files_are_on_disk(tmp_path: Path):
    assert face_embedder("auto", str(tmp_path)).name == "hog64-v1"
    with pytest.raises(ValueError, match="never downloaded"):
        face_embedder("insightface", str(tmp_path))
