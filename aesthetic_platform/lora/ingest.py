"""Ingest a ZIP archive or a folder of photos into a work folder, refusing anything hostile.

Nothing from the upload is ever written under its own name: every accepted picture is
decoded (EXIF orientation applied, long side capped at ``IngestConfig.max_side`` with JPEG
draft/reduce so a 40 MP file never costs a full-resolution canvas beyond the pixel limit)
and re-encoded as ``images/<image_id>.<ext>``. Zip-slip names, absolute names and symlinks
therefore could not escape the work folder anyway; they are still refused, with the reason
recorded, because an archive that carries them was not made by a camera.

Per file the verdict is one of:

* **refused** (hostile or over a limit): ``..`` or absolute member path, symlink or other
  non-regular file, encrypted member, file over ``max_file_bytes``, member whose expansion
  ratio is over ``max_expansion_ratio``, canvas over ``max_pixels`` (pixel bomb);
* **skipped** (not usable): empty file, not an image in an accepted format, corrupt or
  truncated data;
* **kept**.

A whole archive is refused (``ArchiveRefusedError``, nothing written) when it is not a
readable ZIP, has more than ``max_members`` entries, declares more than ``max_total_bytes``
or its total expansion ratio is over the limit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import os
import shutil
import stat
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from PIL import Image

from aesthetic_platform.atomic import swap_dir, write_bytes
from aesthetic_platform.images import REDUCE_MARGIN, ImageInputError, ImageTooLargeError, UnreadableImageError, load_image
from aesthetic_platform.lora.config import IngestConfig
from aesthetic_platform.lora.schemas import IMAGES_DIR, INGEST_RECORDS, INGEST_TABLE, IngestRecord

Progress = Callable[[int, int, str], None]

#: Formats accepted from an upload (HEIF through pillow-heif when it is installed).
LORA_FORMATS = ("JPEG", "MPO", "PNG", "WEBP", "HEIF")
#: Members smaller than this are never refused for their expansion ratio (a tiny text file compresses 100x harmlessly).
RATIO_MIN_BYTES = 1 << 20
#: Names that archivers add next to the photos; skipped quietly with a reason.
METADATA_PARTS = ("__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini")
_READ_CHUNK = 1 << 20
_HEIF_REGISTERED = False


class IngestError(ValueError):
    """The source as a whole cannot be ingested (not a ZIP or folder, or refused)."""


class ArchiveRefusedError(IngestError):
    """The whole archive is refused (bomb, too many members, unreadable); nothing was written."""


@dataclass
class IngestResult:
    work_dir: Path
    table_path: Path
    records: list[IngestRecord] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.records if r.status == status)

    @property
    def kept(self) -> int:
        return self.count("kept")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def refused(self) -> int:
        return self.count("refused")


@dataclass
class _Entry:
    """One file of the source: either a refusal decided from metadata, or a way to read its bytes."""

    name: str
    size: int
    verdict: tuple[str, str] | None = None  # (status, reason) decided without reading
    read: Callable[[], bytes] | None = None


def register_heif() -> bool:
    """Register pillow-heif's opener once; False when it is not installed (HEIC files are then skipped)."""
    global _HEIF_REGISTERED
    if not _HEIF_REGISTERED:
        try:
            import pillow_heif
        except ImportError:
            return False
        pillow_heif.register_heif_opener()
        _HEIF_REGISTERED = True
    return True


def image_id_for(source_name: str, sha256: str) -> str:
    return "i" + hashlib.sha256(f"{source_name}\0{sha256}".encode()).hexdigest()[:15]


def ingest(source: Path, work_dir: Path, config: IngestConfig, progress: Progress | None = None) -> IngestResult:
    """Unpack ``source`` (a .zip file or a folder) into ``work_dir``: images/ plus ingest.parquet.

    A re-run replaces both: the new images are written to a staging folder that is swapped
    in whole, then the table is written atomically.
    """
    source, work_dir = Path(source), Path(work_dir)
    if not source.exists():
        raise IngestError(f"{source}: no such file or folder")
    with contextlib.ExitStack() as closing:
        if source.is_dir():
            entries = list(_folder_entries(source, work_dir, config))
        elif source.is_file():
            entries = _zip_entries(source, config, closing)
        else:
            raise IngestError(f"{source}: neither a ZIP file nor a folder")
        register_heif()
        work_dir.mkdir(parents=True, exist_ok=True)
        staging = work_dir / f".{IMAGES_DIR}.{uuid.uuid4().hex[:8]}.tmp"
        staging.mkdir()
        records: list[IngestRecord] = []
        used: set[str] = set()
        try:
            for done, entry in enumerate(entries, start=1):
                records.append(_ingest_entry(entry, staging, config, used))
                if progress:
                    progress(done, len(entries), entry.name)
            swap_dir(staging, work_dir / IMAGES_DIR)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    table_path = INGEST_RECORDS.write(records, work_dir / INGEST_TABLE)
    return IngestResult(work_dir=work_dir, table_path=table_path, records=records)



def _member_problem(info: zipfile.ZipInfo, config: IngestConfig) -> tuple[str, str] | None:
    name = info.filename
    posix = name.replace("\\", "/")
    parts = PurePosixPath(posix).parts
    if posix.startswith("/") or (len(posix) > 1 and posix[1] == ":"):
        return "refused", "absolute member path (would write outside the work folder)"
    if ".." in parts:
        return "refused", "member path climbs out with '..' (zip slip)"
    mode = info.external_attr >> 16
    if info.create_system == 3 and stat.S_ISLNK(mode):
        return "refused", "symbolic link member"
    if info.create_system == 3 and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return "refused", f"not a regular file (mode {oct(stat.S_IFMT(mode))})"
    if info.flag_bits & 0x1:
        return "refused", "encrypted member (password-protected)"
    if any(part in METADATA_PARTS or part.startswith("._") for part in parts):
        return "skipped", "archiver metadata, not a photo"
    if info.file_size > config.max_file_bytes:
        return "refused", f"{info.file_size:,} bytes uncompressed; the limit is {config.max_file_bytes:,} bytes per file"
    if info.file_size >= RATIO_MIN_BYTES:
        ratio = info.file_size / max(1, info.compress_size)
        if ratio > config.max_expansion_ratio:
            return "refused", f"decompression bomb: expands {ratio:,.0f}x (limit {config.max_expansion_ratio:,.0f}x)"
    if info.file_size == 0:
        return "skipped", "empty file (0 bytes)"
    return None


def _zip_entries(path: Path, config: IngestConfig, closing: contextlib.ExitStack) -> list[_Entry]:
    """Check the archive as a whole from its central directory, then list one entry per member."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ArchiveRefusedError(f"{path.name}: not a readable ZIP archive ({exc})") from None
    closing.enter_context(archive)
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > config.max_members:
        raise ArchiveRefusedError(f"{path.name}: {len(infos):,} members; the limit is {config.max_members:,}")
    total = sum(info.file_size for info in infos)
    packed = sum(info.compress_size for info in infos)
    if total > config.max_total_bytes:
        raise ArchiveRefusedError(f"{path.name}: declares {total:,} bytes uncompressed; the limit is {config.max_total_bytes:,}")
    if total >= RATIO_MIN_BYTES and total / max(1, packed) > config.max_expansion_ratio:
        raise ArchiveRefusedError(
            f"{path.name}: decompression bomb: the archive expands {total / max(1, packed):,.0f}x "
            f"({packed:,} -> {total:,} bytes; limit {config.max_expansion_ratio:,.0f}x)"
        )
    entries = []
    for info in infos:
        verdict = _member_problem(info, config)
        entries.append(_Entry(info.filename, info.file_size, verdict, None if verdict else _member_reader(archive, info, config)))
    return entries


def _member_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, config: IngestConfig) -> Callable[[], bytes]:
    def read() -> bytes:
        # Never trust the declared size: stop as soon as more than the limit comes out.
        chunks, size = [], 0
        with archive.open(info) as handle:
            while chunk := handle.read(_READ_CHUNK):
                size += len(chunk)
                if size > config.max_file_bytes:
                    raise _Refused(f"expands past {config.max_file_bytes:,} bytes (declared {info.file_size:,})")
                chunks.append(chunk)
        return b"".join(chunks)

    return read


class _Refused(Exception):
    """Raised while reading a member that turns out to be over a limit."""


def _folder_entries(root: Path, work_dir: Path, config: IngestConfig) -> Iterator[_Entry]:
    """Walk without following links; the work folder itself is never read back if it lies inside."""
    root = root.resolve()
    skip = work_dir.resolve()
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            full = here / name
            if full == skip:
                dirs.remove(name)
            elif full.is_symlink():
                dirs.remove(name)
                yield _Entry(full.relative_to(root).as_posix() + "/", 0, ("refused", "symbolic link to a folder"))
        dirs.sort()
        for name in sorted(files):
            full = here / name
            rel = full.relative_to(root).as_posix()
            info = full.lstat()
            if stat.S_ISLNK(info.st_mode):
                yield _Entry(rel, 0, ("refused", "symbolic link"))
            elif not stat.S_ISREG(info.st_mode):
                yield _Entry(rel, 0, ("refused", "not a regular file"))
            elif any(part in METADATA_PARTS or part.startswith("._") for part in PurePosixPath(rel).parts):
                yield _Entry(rel, info.st_size, ("skipped", "archiver metadata, not a photo"))
            elif info.st_size > config.max_file_bytes:
                yield _Entry(
                    rel, info.st_size, ("refused", f"{info.st_size:,} bytes; the limit is {config.max_file_bytes:,} bytes per file")
                )
            elif info.st_size == 0:
                yield _Entry(rel, 0, ("skipped", "empty file (0 bytes)"))
            else:
                yield _Entry(rel, info.st_size, None, _file_reader(full, config))


def _file_reader(path: Path, config: IngestConfig) -> Callable[[], bytes]:
    def read() -> bytes:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(config.max_file_bytes + 1)
        if len(data) > config.max_file_bytes:
            raise _Refused(f"grew past {config.max_file_bytes:,} bytes while being read")
        return data

    return read


def _ingest_entry(entry: _Entry, staging: Path, config: IngestConfig, used: set[str]) -> IngestRecord:
    def record(status: str, reason: str, sha: str = "", **extra: object) -> IngestRecord:
        image_id = image_id_for(entry.name, sha)
        serial = 1
        while image_id in used:
            image_id = image_id_for(f"{entry.name}\0{serial}", sha)
            serial += 1
        used.add(image_id)
        return IngestRecord.model_validate(
            {"image_id": image_id, "source_name": entry.name, "sha256": sha, "bytes": entry.size, "status": status, "reason": reason}
            | extra
        )

    if entry.verdict is not None:
        return record(*entry.verdict)
    assert entry.read is not None
    try:
        data = entry.read()
    except _Refused as exc:
        return record("refused", str(exc))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError, ValueError) as exc:
        return record("skipped", f"corrupt archive member: {type(exc).__name__}: {exc}")
    sha = hashlib.sha256(data).hexdigest()
    if not data:
        return record("skipped", "empty file (0 bytes)", sha)
    try:
        stored = _decode(data, entry.name, config)
    except ImageTooLargeError as exc:
        return record("refused", f"pixel bomb: {exc.problem}", sha)
    except ImageInputError as exc:
        return record("skipped", exc.problem, sha)
    image, fmt, (source_w, source_h), note = stored
    pending = record("kept", note, sha)
    ext = "png" if config.store_format == "png" else "jpg"
    buffer = io.BytesIO()
    if config.store_format == "png":
        image.save(buffer, format="PNG", optimize=False, compress_level=3)
    else:
        image.save(buffer, format="JPEG", quality=config.jpeg_quality, subsampling=0 if config.jpeg_quality >= 90 else 2)
    write_bytes(staging / f"{pending.image_id}.{ext}", buffer.getvalue())
    pixel_sha = hashlib.sha256(f"{image.width}x{image.height}\0".encode() + image.tobytes()).hexdigest()
    return pending.model_copy(
        update={
            "path": f"{IMAGES_DIR}/{pending.image_id}.{ext}",
            "pixel_sha256": pixel_sha,
            "width": image.width,
            "height": image.height,
            "source_width": source_w,
            "source_height": source_h,
            "format": fmt,
            "bytes": len(data),
        }
    )


def _decode(data: bytes, name: str, config: IngestConfig) -> tuple[Image.Image, str, tuple[int, int], str]:
    """Open lazily, refuse by declared canvas, decode reduced, cap the long side; (image, format, source size, note)."""
    Image.init()  # load every plugin first: Image.OPEN only lists the few preloaded ones until then
    try:
        opened = Image.open(io.BytesIO(data), formats=[f for f in LORA_FORMATS if f in Image.OPEN])
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(name, f"refused as a decompression bomb: {exc}") from None
    except Image.UnidentifiedImageError:
        raise _not_image(name) from None
    except Exception as exc:  # noqa: BLE001 - any header parse failure means the file is unreadable
        raise _unreadable(name, f"not a readable image: {type(exc).__name__}: {exc}") from None
    fmt = opened.format or ""
    width, height = opened.size
    if width * height > config.max_pixels:
        raise ImageTooLargeError(name, f"declares {width}x{height} = {width * height:,} pixels; the limit is {config.max_pixels:,}")
    try:
        orientation = opened.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001 - broken EXIF only loses the orientation hint
        orientation = 1
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    scale = min(1.0, config.max_side / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    fit: int | None = None
    if scale < 1 and fmt in ("JPEG", "MPO"):
        # Ask the JPEG decoder for the smallest 1/2, 1/4 or 1/8 scale still at least the target (in stored
        # orientation). Done here because load_image rounds its draft request up, which for an odd side
        # (e.g. 5163 -> 2582) makes the decoder fall back to full scale.
        raw = (target[1], target[0]) if orientation in (5, 6, 7, 8) else target
        opened.draft(None, raw)
    elif scale < 1:
        # load_image keeps REDUCE_MARGIN x its target per side; asking for target/margin² leaves the reduce just above target.
        fit = math.ceil(target[0] * target[1] / REDUCE_MARGIN**2)
    image = load_image(opened, name=name, fit_pixels=fit, max_pixels=config.max_pixels)
    note = "stored as decoded"
    if image.size != target:
        image = image.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
        note = f"long side capped {max(width, height)} -> {max(target)} px"
    if orientation not in (1, None):
        note += f"; EXIF orientation {orientation} applied"
    return image, fmt, (width, height), note


def _not_image(name: str) -> ImageInputError:
    return UnreadableImageError(name, f"not an image in an accepted format ({', '.join(LORA_FORMATS)})")


def _unreadable(name: str, problem: str) -> ImageInputError:
    return UnreadableImageError(name, problem)
