"""Ingest: hostile archives are refused with reasons, bad files skipped, nothing lands outside the work folder."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.lora.config import IngestConfig
from aesthetic_platform.lora.ingest import ArchiveRefusedError, IngestError, ingest
from aesthetic_platform.lora.schemas import INGEST_RECORDS
from tests.lora.conftest import build_zip, encoded, listing, photo, png_declaring, set_encrypted_flag


def _corrupt(jpeg: bytes) -> bytes:
    """Headers intact, entropy-coded data replaced by noise after the start-of-scan marker."""
    scan = jpeg.find(b"\xff\xda") + 50
    return jpeg[:scan] + np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes()


def _by_name(result) -> dict:
    return {r.source_name: r for r in result.records}


def test_hostile_members_are_refused_bad_files_skipped_and_nothing_is_written_outside(tmp_path: Path, astronaut_jpeg: bytes):
    outside_abs = Path("/tmp") / f"lora-abs-{uuid.uuid4().hex}.jpg"
    link = zipfile.ZipInfo("link.jpg")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    noise = np.random.default_rng(0).integers(0, 256, 60_000, dtype=np.uint8).tobytes()  # incompressible: keeps the archive's ratio sane
    members = [
        ("photos/astronaut.jpg", astronaut_jpeg),
        ("../../evil.jpg", astronaut_jpeg),
        (str(outside_abs), astronaut_jpeg),
        (link, b"/etc/passwd"),
        ("secret.jpg", astronaut_jpeg),
        ("bomb/huge.png", png_declaring(30_000, 30_000)),
        ("bomb/over_limit.png", png_declaring(9_000, 9_000)),
        ("bomb/zeros.jpg", b"\0" * (4 << 20)),
        ("truncated.jpg", astronaut_jpeg[: len(astronaut_jpeg) // 3]),
        ("corrupt.jpg", _corrupt(astronaut_jpeg)),
        ("empty.jpg", b""),
        ("notes.txt", b"not a picture"),
        ("noise.bin", noise),
        ("__MACOSX/._astronaut.jpg", b"\0\5\26\7 apple double"),
    ]
    archive = tmp_path / "upload.zip"
    archive.write_bytes(set_encrypted_flag(build_zip(tmp_path / "plain.zip", members).read_bytes(), "secret.jpg"))
    work = tmp_path / "job" / "work"
    before = listing(tmp_path)

    result = ingest(archive, work, IngestConfig())

    rows = _by_name(result)
    assert set(rows) == {name if isinstance(name, str) else name.filename for name, _ in members}
    expect = {
        "photos/astronaut.jpg": ("kept", ""),
        "../../evil.jpg": ("refused", "zip slip"),
        str(outside_abs): ("refused", "absolute member path"),
        "link.jpg": ("refused", "symbolic link"),
        "secret.jpg": ("refused", "encrypted"),
        "bomb/huge.png": ("refused", "bomb"),
        "bomb/over_limit.png": ("refused", "pixel bomb: declares 9000x9000"),
        "bomb/zeros.jpg": ("refused", "decompression bomb: expands"),
        "truncated.jpg": ("skipped", "truncated"),
        "corrupt.jpg": ("skipped", "cannot be decoded"),
        "empty.jpg": ("skipped", "empty file (0 bytes)"),
        "notes.txt": ("skipped", "not an image"),
        "noise.bin": ("skipped", "not an image"),
        "__MACOSX/._astronaut.jpg": ("skipped", "archiver metadata"),
    }
    for name, (status, words) in expect.items():
        assert rows[name].status == status, (name, rows[name])
        assert words in rows[name].reason, (name, rows[name].reason)
    kept = rows["photos/astronaut.jpg"]
    assert (kept.width, kept.height, kept.format) == (512, 512, "JPEG")
    assert (work / kept.path).is_file() and kept.path == f"images/{kept.image_id}.jpg"

    # Only the work folder changed; the escape targets do not exist anywhere.
    after = listing(tmp_path)
    assert {p for p in after - before if not p.startswith("job/work")} == {"job"}
    assert before <= after
    assert sorted(p.name for p in (work / "images").iterdir()) == [f"{kept.image_id}.jpg"]
    assert not (tmp_path / "evil.jpg").exists() and not (tmp_path.parent / "evil.jpg").exists() and not outside_abs.exists()
    table = INGEST_RECORDS.read(work / "ingest.parquet")
    assert table.height == len(members) and table["image_id"].n_unique() == len(members)


@pytest.mark.parametrize(
    ("members", "config", "words"),
    [
        ([("zeros.bin", b"\0" * (8 << 20))], IngestConfig(), "decompression bomb: the archive expands"),
        ([(f"f{i}.jpg", b"x") for i in range(6)], IngestConfig(max_members=5), "6 members; the limit is 5"),
        ([("a.bin", b"\1" * 5000)], IngestConfig(max_total_bytes=4000), "declares 5,000 bytes"),
    ],
)
def test_a_whole_archive_refusal_raises_by_name_and_writes_nothing(tmp_path: Path, members, config, words):
    archive = build_zip(tmp_path / "bomb.zip", members)
    before = listing(tmp_path)
    with pytest.raises(ArchiveRefusedError, match=words) as caught:
        ingest(archive, tmp_path / "work", config)
    assert isinstance(caught.value, ValueError)
    assert listing(tmp_path) == before


def test_not_a_zip_and_missing_sources_are_named(tmp_path: Path):
    fake = tmp_path / "photos.zip"
    fake.write_bytes(b"PK but not really a zip")
    with pytest.raises(ArchiveRefusedError, match="photos.zip: not a readable ZIP"):
        ingest(fake, tmp_path / "work", IngestConfig())
    with pytest.raises(IngestError, match="no such file or folder"):
        ingest(tmp_path / "missing", tmp_path / "work", IngestConfig())
    assert not (tmp_path / "work").exists()


def test_members_over_the_size_limit_are_refused(tmp_path: Path, astronaut_jpeg: bytes):
    small = encoded(photo("astronaut", 64))
    archive = build_zip(tmp_path / "a.zip", [("big.jpg", astronaut_jpeg), ("small.jpg", small)], compression=zipfile.ZIP_STORED)
    rows = _by_name(ingest(archive, tmp_path / "work", IngestConfig(max_file_bytes=len(small) + 10)))
    assert rows["big.jpg"].status == "refused" and "the limit is" in rows["big.jpg"].reason
    assert rows["small.jpg"].status == "kept"


def test_folder_links_are_refused_and_a_work_folder_inside_is_not_read_back(tmp_path: Path, astronaut_jpeg: bytes):
    source = tmp_path / "photos"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "a.jpg").write_bytes(astronaut_jpeg)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.jpg").write_bytes(astronaut_jpeg)
    os.symlink(tmp_path / "elsewhere" / "b.jpg", source / "linked.jpg")
    os.symlink(tmp_path / "elsewhere", source / "linked_dir")
    work = source / "work"

    first = _by_name(ingest(source, work, IngestConfig()))
    second = _by_name(ingest(source, work, IngestConfig()))

    assert first.keys() == second.keys() == {"sub/a.jpg", "linked.jpg", "linked_dir/"}
    assert second["sub/a.jpg"].status == "kept"
    assert second["linked.jpg"].status == "refused" and "symbolic link" in second["linked.jpg"].reason
    assert second["linked_dir/"].status == "refused"
    assert second["sub/a.jpg"].image_id == first["sub/a.jpg"].image_id


def test_exif_orientation_heif_webp_png_and_long_side_cap(tmp_path: Path):
    base = photo("coffee", 320)  # 320x213
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    large = photo("chelsea", 3200)
    members = [
        ("rotated.jpg", encoded(base, exif=exif.tobytes(), quality=90)),
        ("photo.heic", encoded(base, "HEIF")),
        ("photo.webp", encoded(base, "WEBP", quality=90)),
        ("photo.png", encoded(base, "PNG")),
        ("large.jpg", encoded(large, quality=85)),
    ]
    rows = _by_name(ingest(build_zip(tmp_path / "a.zip", members), tmp_path / "work", IngestConfig(max_side=1024, store_format="png")))
    assert {n: r.status for n, r in rows.items()} == dict.fromkeys(rows, "kept")
    assert (rows["rotated.jpg"].width, rows["rotated.jpg"].height) == (213, 320)
    assert "EXIF orientation 6 applied" in rows["rotated.jpg"].reason
    assert rows["photo.heic"].format == "HEIF" and rows["photo.webp"].format == "WEBP"
    big = rows["large.jpg"]
    assert (big.source_width, big.source_height) == large.size
    assert max(big.width, big.height) == 1024 and "long side capped 3200 -> 1024" in big.reason
    with Image.open(tmp_path / "work" / big.path) as stored:
        assert stored.format == "PNG" and stored.size == (big.width, big.height)


def test_rerun_replaces_images_and_table(tmp_path: Path, astronaut_jpeg: bytes):
    work = tmp_path / "work"
    ingest(build_zip(tmp_path / "one.zip", [("a.jpg", astronaut_jpeg), ("b.jpg", encoded(photo("coffee")))]), work, IngestConfig())
    calls: list[tuple[int, int, str]] = []
    result = ingest(
        build_zip(tmp_path / "two.zip", [("c.jpg", encoded(photo("rocket")))]), work, IngestConfig(), lambda *call: calls.append(call)
    )
    assert calls == [(1, 1, "c.jpg")]
    assert [r.source_name for r in result.records] == ["c.jpg"]
    assert sorted(p.name for p in (work / "images").iterdir()) == [f"{result.records[0].image_id}.jpg"]
    assert [p.name for p in work.iterdir() if p.name.startswith(".")] == []
    assert INGEST_RECORDS.read(work / "ingest.parquet")["source_name"].to_list() == ["c.jpg"]


def test_the_first_file_of_a_fresh_process_is_read(tmp_path: Path, astronaut_jpeg: bytes):
    """Pillow registers most format plugins lazily: the very first file must not be judged before they load."""
    archive = build_zip(tmp_path / "a.zip", [("first.webp", encoded(photo("coffee", 64), "WEBP")), ("second.jpg", astronaut_jpeg)])
    script = (
        "import sys; from pathlib import Path; from aesthetic_platform.lora.ingest import ingest; "
        "from aesthetic_platform.lora.config import IngestConfig; "
        "print(' '.join(r.status for r in ingest(Path(sys.argv[1]), Path(sys.argv[2]), IngestConfig()).records))"
    )
    done = subprocess.run([sys.executable, "-c", script, str(archive), str(tmp_path / "work")], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["kept", "kept"]
