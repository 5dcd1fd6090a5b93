"""Real photos (``skimage.data``) and hand-built archives for the LoRA builder's core tests."""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import data


def photo(name: str, long_side: int | None = None) -> Image.Image:
    """A ``skimage.data`` photo as RGB, optionally resized so its long side is ``long_side``."""
    array = getattr(data, name)()
    image = Image.fromarray(np.asarray(array)).convert("RGB")
    if long_side is not None:
        scale = long_side / max(image.size)
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BICUBIC)
    return image


def encoded(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 92} if fmt == "JPEG" and not params else params))
    return buffer.getvalue()


def variants(image: Image.Image) -> dict[str, Image.Image]:
    """The near-duplicate variants of the benchmark: resized, recompressed, slightly cropped, brightened, flipped."""
    dx, dy = round(image.width * 0.04), round(image.height * 0.04)
    return {
        "original": image,
        "resized": image.resize((round(image.width * 0.6), round(image.height * 0.6)), Image.Resampling.LANCZOS),
        "recompressed": Image.open(io.BytesIO(encoded(image, quality=35))).convert("RGB"),
        "cropped": image.crop((dx, dy, image.width - dx, image.height - dy)),
        "brightened": ImageEnhance.Brightness(image).enhance(1.3),
        "flipped": ImageOps.mirror(image),
    }


def png_declaring(width: int, height: int) -> bytes:
    """A tiny valid-looking PNG whose header declares a ``width`` x ``height`` canvas (a pixel bomb)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    idat = zlib.compress(b"\x00" * 64)

    def pack(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + pack(b"IDAT", idat)
        + pack(b"IEND", b"")
    )


def set_encrypted_flag(archive: bytes, name: str) -> bytes:
    """Set general-purpose bit 0 (encrypted) of ``name`` in both its local and central header; zipfile cannot write it."""
    raw = bytearray(archive)
    encoded_name = name.encode()
    for signature, flag_at, name_len_at, name_at in ((b"PK\x03\x04", 6, 26, 30), (b"PK\x01\x02", 8, 28, 46)):
        start = 0
        while (start := raw.find(signature, start)) >= 0:
            length = struct.unpack_from("<H", raw, start + name_len_at)[0]
            if bytes(raw[start + name_at : start + name_at + length]) == encoded_name:
                flags = struct.unpack_from("<H", raw, start + flag_at)[0]
                struct.pack_into("<H", raw, start + flag_at, flags | 0x1)
            start += 4
    return bytes(raw)


def build_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for member, content in members:
            archive.writestr(member, content)
    path.write_bytes(buffer.getvalue())
    return path


def listing(folder: Path) -> set[str]:
    """Every path under ``folder`` (relative), to compare before and after a run."""
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture(scope="session")
def astronaut_jpeg() -> bytes:
    return encoded(photo("astronaut"))
