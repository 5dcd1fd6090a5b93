"""Validation of fetched image bytes: decoded, size and pixel limits, bombs refused.

The platform has no shared image loader yet, so this is the one small Pillow function
the crawler validates with; it reads only the header before deciding on the pixel
count, so a decompression bomb is refused without being decoded.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

#: Pillow format name -> file suffix of the stored copy.
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


def validate_image_bytes(data: bytes, max_pixels: int, min_side: int = 1) -> ImageInfo:
    """Decode ``data`` fully and check it, or raise ``ImageRejected`` with the reason.

    Reasons: ``not_an_image`` (no known image header), ``unsupported_format``,
    ``too_many_pixels`` (width x height above ``max_pixels``, checked from the header
    before any pixel is decoded; Pillow's own bomb guard maps here too), ``too_small``
    and ``decode_failed`` (truncated or corrupt pixel data).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageRejected("too_many_pixels", str(exc)) from None
        except UnidentifiedImageError:
            raise ImageRejected("not_an_image", f"{len(data)} bytes with no known image header, starting {data[:16]!r}") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected("decode_failed", str(exc)) from None
        with image:
            if image.format not in SUFFIXES:
                raise ImageRejected("unsupported_format", str(image.format))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageRejected("too_many_pixels", f"{width}x{height} = {width * height} pixels > {max_pixels}")
            if min(width, height) < min_side:
                raise ImageRejected("too_small", f"{width}x{height}, shorter side < {min_side}")
            try:
                image.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise ImageRejected("too_many_pixels", str(exc)) from None
            except (OSError, SyntaxError, ValueError, EOFError) as exc:
                raise ImageRejected("decode_failed", str(exc)) from None
            return ImageInfo(image.format, width, height, image.mode)
