"""Validation of fetched image bytes through the platform's one image loader.

``aesthetic_platform.images`` reads the header first and refuses a canvas over the
pixel limit (decompression bombs included) before anything is decoded; this module
adds what a crawler needs on top: the web formats it stores, a shortest-side minimum,
the file suffix of the stored copy, and short machine-readable reasons for the frontier.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from aesthetic_platform.images import ImageTooLargeError, UnreadableImageError, image_size, load_image

#: Formats the crawler stores -> file suffix of the stored copy.
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif"}


class ImageRejected(ValueError):
    """The bytes are not an acceptable image; ``reason`` is a short machine-readable word."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.format]


def validate_image_bytes(data: bytes, max_pixels: int, min_side: int = 1, name: str = "<download>") -> ImageInfo:
    """Decode ``data`` fully and check it, or raise ``ImageRejected`` with the reason.

    Reasons: ``not_an_image`` (no readable image header), ``too_many_pixels`` (width x
    height above ``max_pixels``, decided from the header before any pixel is decoded),
    ``unsupported_format`` (readable, but not JPEG/PNG/WEBP/GIF), ``too_small`` and
    ``decode_failed`` (truncated or corrupt pixel data).
    """
    try:
        width, height = image_size(data, name=name, max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        raise ImageRejected("too_many_pixels", exc.problem) from None
    except UnreadableImageError as exc:
        raise ImageRejected("not_an_image", f"{exc.problem}; {len(data)} bytes starting {data[:16]!r}") from None
    with Image.open(io.BytesIO(data)) as header:  # header only: the loader above has accepted it
        fmt, mode = header.format or "", header.mode
    if fmt not in SUFFIXES:
        raise ImageRejected("unsupported_format", fmt)
    if min(width, height) < min_side:
        raise ImageRejected("too_small", f"{width}x{height}, shorter side < {min_side}")
    try:
        load_image(data, name=name, max_pixels=max_pixels)
    except ImageTooLargeError as exc:
        raise ImageRejected("too_many_pixels", exc.problem) from None
    except UnreadableImageError as exc:
        raise ImageRejected("decode_failed", exc.problem) from None
    return ImageInfo(fmt, width, height, mode)
