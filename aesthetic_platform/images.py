"""The one image loader behind every surface that reads pictures (Scorer, CLI, HTTP, training).

``load_image`` turns a path, raw bytes, a binary file object or a PIL image into an
8-bit RGB ``PIL.Image``:

* **Size first, pixels later.** The header is read and the declared ``width x height``
  checked against ``max_pixels`` (default ``MAX_IMAGE_PIXELS``) before anything is
  decoded, so a small file that declares a huge canvas (a decompression bomb) costs
  nothing. Pillow's own ``DecompressionBombError`` is reported the same way.
* **Reduced while decoding.** Given ``fit_pixels`` (the pixel count the caller will
  resize to, e.g. the model's patch budget times the patch area), a JPEG is decoded at
  1/2, 1/4 or 1/8 scale (``Image.draft``) and any other format is box-reduced right after
  decoding, one band of rows at a time, keeping at least twice the target on each side
  for the final resize. The decoded canvas is the only full-resolution buffer, and it
  does not outlive the call.
* **Every mode.** 16-bit and 32-bit integer images (``I;16*``, ``I``: Pillow's decoders
  put them on a 0..65535 scale) are scaled by 255/65535, not clipped; float images
  (``F``) are scaled from the smallest of the ranges 0..1, 0..255 and 0..65535 that holds
  their maximum; palette, bilevel, CMYK, YCbCr, LAB and HSV are converted; transparency
  (alpha channel or a transparent palette/colour) is composited over white; the EXIF
  orientation is applied. Animated files give their first frame.
* **Named errors.** Every failure is an ``ImageInputError`` (a ``ValueError``) that names
  the input: ``ImageNotFoundError``, ``UnreadableImageError`` (not an image, truncated,
  corrupt, unsupported format) or ``ImageTooLargeError`` (over the pixel limit).

Only the formats in ``ALLOWED_FORMATS`` are opened: Pillow plugins that shell out to
other programs (EPS) or parse exotic containers are never reached from an upload.
"""

from __future__ import annotations

import contextlib
import io
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import ExifTags, Image

#: Largest declared canvas (width x height) decoded: 8000 x 8000. Above it the file is refused unread.
MAX_IMAGE_PIXELS = 64_000_000
#: A reduced image keeps at least this factor over the target on each side, for a clean final resize.
REDUCE_MARGIN = 2
#: Pixels of full-resolution canvas reduced at a time (a band of rows), so no whole-canvas copy is made.
BAND_PIXELS = 2_000_000
#: Pillow format names opened (JPEG includes multi-picture MPO files; PPM includes PGM and PBM).
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "AVIF", "GIF", "BMP", "TIFF", "PPM", "TGA", "QOI")
WHITE = (255, 255, 255)
EIGHT_BIT_MAX = 255.0
SIXTEEN_BIT_MAX = 65535.0
UNIT_MAX = 1.0
_INT_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_MAX_PROBLEM_CHARS = 300

# Pillow warns (once per canvas over Image.MAX_IMAGE_PIXELS) before this module's own limit decides;
# the decision and its message are ours, so the warning would only add a second, confusing line.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

ImageSource = str | Path | bytes | BinaryIO | Image.Image


class ImageInputError(ValueError):
    """An image input that cannot be used; the message names the input (and its index, when given)."""

    def __init__(self, source: str, problem: str, index: int | None = None) -> None:
        self.source, self.problem, self.index = source, problem, index
        prefix = f"image {index}: {source}" if index is not None else source
        super().__init__(f"{prefix}: {problem}")

    def at(self, index: int, source: str | None = None) -> ImageInputError:
        """The same error, naming the position of the image in the caller's list."""
        return type(self)(source or self.source, self.problem, index)


class ImageNotFoundError(ImageInputError, FileNotFoundError):
    """The path does not name a readable file (also a ``FileNotFoundError``)."""


class UnreadableImageError(ImageInputError):
    """Not an image, a truncated or corrupt one, or a format that is not accepted."""


class ImageTooLargeError(ImageInputError):
    """The declared canvas is over the pixel limit (includes decompression bombs)."""


def _short(text: str) -> str:
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


def source_name(source: ImageSource, name: str | None = None) -> str:
    if name:
        return name
    if isinstance(source, (str, Path)):
        return str(source)
    own = getattr(source, "filename", None) or getattr(source, "name", None)
    return own if isinstance(own, str) and own else f"<{type(source).__name__}>"


def _allowed_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(fmt for fmt in ALLOWED_FORMATS if fmt in Image.OPEN)


@contextlib.contextmanager
def _opened(source: str | Path | bytes | BinaryIO, name: str, max_pixels: int) -> Iterator[Image.Image]:
    """Open lazily (header only) and refuse a canvas over ``max_pixels`` before any decoding.

    A file this function opens is closed on exit; a caller's file object is left open.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise ImageNotFoundError(name, "no such file" if not path.exists() else "not a regular file")
            try:
                fp: BinaryIO = stack.enter_context(open(path, "rb"))
            except OSError as exc:
                raise ImageNotFoundError(name, f"cannot be opened: {exc.strerror or exc}") from None
        elif isinstance(source, (bytes, bytearray, memoryview)):
            fp = io.BytesIO(bytes(source))
        else:
            fp = source
            if fp.seekable():
                fp.seek(0)
        try:
            image = Image.open(fp, formats=_allowed_formats())
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(name, f"refused as a decompression bomb: {_short(str(exc))}") from None
        except Image.UnidentifiedImageError:
            accepted = ", ".join(_allowed_formats())
            raise UnreadableImageError(name, f"not an image in an accepted format ({accepted})") from None
        except Exception as exc:  # noqa: BLE001 - any header parse failure (struct.error, SyntaxError, ...) means unreadable
            raise UnreadableImageError(name, f"not a readable image: {_short(f'{type(exc).__name__}: {exc}')}") from None
        _check_canvas(image, name, max_pixels)
        yield image


def _check_canvas(image: Image.Image, name: str, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise UnreadableImageError(name, f"declares an empty canvas {width}x{height}")
    if width * height > max_pixels:
        raise ImageTooLargeError(
            name, f"{width}x{height} is {width * height:,} pixels; the limit is {max_pixels:,} pixels per image"
        )


def image_size(source: ImageSource, name: str | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Declared (width, height) from the header alone; raises like ``load_image`` for bad or oversized input."""
    label = source_name(source, name)
    if isinstance(source, Image.Image):
        return source.size
    with _opened(source, label, max_pixels) as image:
        return image.size


def reduce_factor(width: int, height: int, fit_pixels: int | None) -> int:
    """Largest integer factor that still leaves ``REDUCE_MARGIN`` x the target on each side (1 = keep)."""
    if not fit_pixels or fit_pixels <= 0:
        return 1
    keep = fit_pixels * REDUCE_MARGIN * REDUCE_MARGIN
    return max(1, math.floor(math.sqrt(width * height / keep)))


def _draft_jpeg(image: Image.Image, fit_pixels: int | None) -> None:
    """Ask the JPEG decoder for a 1/2, 1/4 or 1/8 scale decode no smaller than the margin allows."""
    factor = reduce_factor(image.width, image.height, fit_pixels)
    if factor > 1 and image.format in ("JPEG", "MPO"):
        # Pillow picks the scale as min(width // requested_width, height // requested_height): ask for the
        # floor, or an odd side (5163 // ceil(5163 / 2) == 1) silently means a full-resolution decode.
        image.draft(None, (max(1, image.width // factor), max(1, image.height // factor)))


def _reduce(image: Image.Image, fit_pixels: int | None) -> Image.Image:
    """Box-reduce a decoded image by an integer factor, one band of rows at a time.

    Working in bands keeps the extra memory to one band: Pillow's own ``reduce`` of an
    alpha image, and any palette expansion or 16-bit widening, would otherwise copy the
    whole full-resolution canvas. Bands start at multiples of the factor, so the result
    equals one ``reduce`` of the whole image.
    """
    factor = reduce_factor(image.width, image.height, fit_pixels)
    if factor <= 1:
        return image
    width, height = image.size
    band_rows = factor * max(1, BAND_PIXELS // (width * factor))
    reduced: Image.Image | None = None
    for top in range(0, height, band_rows):
        band = image.crop((0, top, width, min(height, top + band_rows)))
        if band.mode in ("P", "PA", "1"):
            band = _expand_palette(band)
        elif band.mode in ("L", "RGB") and "transparency" in band.info:
            band = band.convert("RGBA")  # a transparent colour key means nothing once pixels are averaged
        elif band.mode in _INT_MODES[1:]:
            band = band.convert("I")
        small = band.reduce(factor)
        if reduced is None:
            reduced = Image.new(small.mode, (math.ceil(width / factor), math.ceil(height / factor)))
        reduced.paste(small, (0, top // factor))
    assert reduced is not None
    return reduced


def _expand_palette(image: Image.Image) -> Image.Image:
    if image.mode == "1":
        return image.convert("L")
    if image.mode == "PA" or "transparency" in image.info:
        return image.convert("RGBA")
    return image.convert("RGB")


def _orientation(image: Image.Image) -> int:
    try:
        value = image.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - malformed EXIF only loses the orientation hint, not the picture
        return 1
    return value if isinstance(value, int) else 1


def _scaled_to_8bit(image: Image.Image) -> Image.Image:
    """``I;16*``/``I`` on the 16-bit scale and ``F`` on its detected scale -> ``L``, scaled, not clipped."""
    array = np.asarray(image.convert("I") if image.mode in _INT_MODES[1:] else image).astype(np.float64)
    if image.mode == "F":
        finite = array[np.isfinite(array)]
        peak = float(finite.max()) if finite.size else 0.0
        scale = next((top for top in (UNIT_MAX, EIGHT_BIT_MAX) if peak <= top), SIXTEEN_BIT_MAX)
        array = np.nan_to_num(array, nan=0.0, posinf=scale, neginf=0.0)
    else:
        scale = SIXTEEN_BIT_MAX
    eight_bit = np.clip(np.rint(array * (EIGHT_BIT_MAX / scale)), 0, EIGHT_BIT_MAX).astype(np.uint8)
    return Image.fromarray(eight_bit)


def to_rgb(image: Image.Image, background: tuple[int, int, int] = WHITE) -> Image.Image:
    """Any Pillow mode -> 8-bit RGB (see the module docstring for how each mode is read)."""
    if image.mode in _INT_MODES or image.mode == "F":
        image = _scaled_to_8bit(image)
    if image.mode in ("P", "1"):
        image = _expand_palette(image)
    elif image.mode in ("L", "RGB") and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        rgba = (image.convert("LA") if image.mode == "La" else image).convert("RGBA")
        flat = Image.new("RGBA", rgba.size, (*background, 255))
        flat.alpha_composite(rgba)
        return flat.convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def load_image(
    source: ImageSource,
    *,
    name: str | None = None,
    fit_pixels: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    background: tuple[int, int, int] = WHITE,
) -> Image.Image:
    """An 8-bit RGB image, EXIF orientation applied, reduced while decoding when ``fit_pixels`` is given.

    ``name`` is how errors refer to the input (default: the path, or the file object's name).
    Raises ``ImageInputError`` subclasses only.
    """
    label = source_name(source, name)
    if isinstance(source, Image.Image):
        if getattr(source, "tile", None):  # opened by the caller but not decoded yet
            _check_canvas(source, label, max_pixels)
            return _finish(_decoded(source, label, fit_pixels), label, fit_pixels, background)
        return _finish(source, label, fit_pixels, background)  # already in memory: nothing left to refuse
    with _opened(source, label, max_pixels) as image:
        return _finish(_decoded(image, label, fit_pixels), label, fit_pixels, background)


def _decoded(image: Image.Image, label: str, fit_pixels: int | None) -> Image.Image:
    try:
        _draft_jpeg(image, fit_pixels)
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(label, f"refused as a decompression bomb: {_short(str(exc))}") from None
    except Exception as exc:  # noqa: BLE001 - truncated/corrupt data surfaces as OSError, ValueError, SyntaxError, ...
        raise UnreadableImageError(label, f"cannot be decoded: {_short(f'{type(exc).__name__}: {exc}')}") from None
    return image


def _finish(image: Image.Image, label: str, fit_pixels: int | None, background: tuple[int, int, int]) -> Image.Image:
    try:
        orientation = _orientation(image)
        image = _reduce(image, fit_pixels)
        if orientation in _ORIENTATION:
            image = image.transpose(_ORIENTATION[orientation])
        return to_rgb(image, background)
    except Exception as exc:  # noqa: BLE001 - a mode Pillow cannot convert, or memory, is still this input's fault
        raise UnreadableImageError(label, f"cannot be converted to RGB: {_short(f'{type(exc).__name__}: {exc}')}") from None
