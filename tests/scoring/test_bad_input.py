"""Bad and unusual images and prompts through the Python API: right pixels, or a named ValueError."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.images import (
    ImageInputError,
    ImageNotFoundError,
    ImageTooLargeError,
    UnreadableImageError,
    image_size,
    load_image,
)
from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.prompts.records import MAX_PROMPT_CHARS
from aesthetic_platform.scoring import PromptError, Scorer
from tests.fixtures.hostile_images import bomb_png, encoded, photo, png16

PROMPT = "a poster of an astronaut, centered composition"
SAME_SCORE = 1e-4


@pytest.fixture(scope="module")
def scorer(tmp_path_factory) -> Scorer:
    folder = tmp_path_factory.mktemp("model")
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return Scorer.from_pretrained(folder, device="cpu")


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _close(a: dict[str, float], b: dict[str, float], tolerance: float = SAME_SCORE) -> bool:
    return all(math.isclose(a[d], b[d], abs_tol=tolerance) for d in a)


# --- every mode reads as the picture it is --------------------------------------------------------


def test_16_bit_grey_png_scores_like_its_8_bit_version(scorer):
    grey8 = np.asarray(photo().convert("L"), dtype=np.uint16)
    jitter = np.random.default_rng(0).integers(-128, 129, grey8.shape)
    grey16 = np.clip(grey8 * 257 + jitter, 0, 65535).astype(np.uint16)  # same 8-bit picture, real 16-bit detail
    as16 = png16(grey16)
    assert Image.open(io.BytesIO(as16)).mode == "I;16"
    as8 = encoded(Image.fromarray(grey8.astype(np.uint8)), "PNG")
    assert np.array_equal(_pixels(load_image(as16)), _pixels(load_image(as8)))
    score16, score8 = scorer.score([as16, as8], PROMPT)
    assert _close(score16, score8)
    white = scorer.score([encoded(Image.new("L", photo().size, 255), "PNG")], PROMPT)[0]
    assert not _close(score16, white, 1e-3)  # 16 bits are not clipped to white any more


def test_16_bit_rgb_png_scores_like_its_8_bit_version(scorer):
    rgb8 = np.asarray(photo(), dtype=np.uint16)
    as16 = png16(np.clip(rgb8.astype(np.int64) * 257 + 200, 0, 65535))
    as8 = encoded(Image.fromarray(rgb8.astype(np.uint8)), "PNG")
    assert np.abs(_pixels(load_image(as16)) - _pixels(load_image(as8))).max() <= 1
    score16, score8 = scorer.score([as16, as8], PROMPT)
    assert _close(score16, score8, 0.02)


def test_float_and_32_bit_images_are_scaled_not_clipped():
    grey = np.asarray(photo().convert("L"), dtype=np.float32)
    expected = _pixels(Image.fromarray(grey.astype(np.uint8)).convert("RGB"))
    unit_float = Image.fromarray(grey / 255.0)
    assert unit_float.mode == "F"
    assert np.abs(_pixels(load_image(encoded(unit_float, "TIFF"))) - expected).max() <= 1
    eight_bit_float = Image.fromarray(grey)  # what Image.convert("F") gives for an 8-bit picture
    assert np.abs(_pixels(load_image(eight_bit_float)) - expected).max() <= 1
    int32 = Image.fromarray(grey.astype(np.int32) * 257)
    assert int32.mode == "I"
    assert np.abs(_pixels(load_image(int32)) - expected).max() <= 1


def test_palette_png_scores_like_its_rgb_version(scorer):
    palette = photo().quantize(64)
    assert palette.mode == "P"
    as_png = encoded(palette, "PNG")
    rgb = encoded(palette.convert("RGB"), "PNG")
    assert np.array_equal(_pixels(load_image(as_png)), _pixels(load_image(rgb)))
    assert _close(*scorer.score([as_png, rgb], PROMPT))


def test_cmyk_jpeg_is_converted_to_the_same_colours(scorer):
    source = photo()
    cmyk = encoded(source.convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(cmyk)).mode == "CMYK"
    loaded = load_image(cmyk)
    assert loaded.mode == "RGB" and loaded.size == source.size
    assert np.abs(_pixels(loaded) - _pixels(source)).mean() < 4
    rgb = encoded(source, "JPEG", quality=95)
    assert _close(*scorer.score([cmyk, rgb], PROMPT), 0.05)


def test_transparency_is_flattened_over_white():
    rgba = photo().convert("RGBA")
    array = np.asarray(rgba).copy()
    array[:, : array.shape[1] // 2, 3] = 0  # left half fully transparent (its RGB values are still there)
    loaded = load_image(encoded(Image.fromarray(array, "RGBA"), "PNG"))
    assert (np.asarray(loaded)[:, : array.shape[1] // 2] == 255).all()
    assert np.array_equal(np.asarray(loaded)[:, -10:], np.asarray(photo())[:, -10:])
    grey_alpha = Image.new("LA", (8, 8), (0, 0))
    assert load_image(grey_alpha).getpixel((0, 0)) == (255, 255, 255)
    transparent_palette = Image.new("P", (8, 8), 0)
    transparent_palette.info["transparency"] = 0
    assert load_image(encoded(transparent_palette, "PNG")).getpixel((0, 0)) == (255, 255, 255)


def test_exif_orientation_is_applied():
    source = photo((160, 96))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated by 90 degrees clockwise
    turned = load_image(encoded(source, "JPEG", quality=95, exif=exif.tobytes()))
    assert turned.size == (96, 160)
    upright = source.transpose(Image.Transpose.ROTATE_270)
    assert np.abs(_pixels(turned) - _pixels(upright)).mean() < 4


# --- reduced as soon as decoded -----------------------------------------------------------------


def test_a_large_jpeg_is_decoded_at_a_fraction_of_its_size():
    big = encoded(photo((4000, 3000)), "JPEG", quality=90)
    loaded = load_image(big, fit_pixels=128 * 128)
    assert loaded.size == (500, 375)  # the decoder's 1/8 scale: the full 12 MP were never decoded
    assert load_image(big).size == (4000, 3000)


def test_a_large_png_is_reduced_right_after_decoding_and_keeps_its_ratio():
    loaded = load_image(encoded(photo((2000, 1500)), "PNG"), fit_pixels=128 * 128)
    assert 4 * 128 * 128 <= loaded.width * loaded.height < 2000 * 1500 / 16  # twice the target on each side, no more
    assert loaded.width / loaded.height == pytest.approx(2000 / 1500, rel=0.01)


def test_reduction_changes_scores_only_slightly(scorer):
    big = photo((1024, 768))
    reduced_while_decoding = scorer.score([encoded(big, "PNG")], PROMPT)[0]
    resized_directly = scorer.score([big.resize((128, 96), Image.Resampling.BICUBIC)], PROMPT)[0]
    assert _close(reduced_while_decoding, resized_directly, 0.05)


# --- refused, with the index ------------------------------------------------------------------------


def test_a_decompression_bomb_is_refused_before_decoding(scorer, tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(bomb_png())
    assert bomb.stat().st_size < 40_000
    good = tmp_path / "good.png"
    photo().save(good)
    with pytest.raises(ImageTooLargeError) as refused:
        scorer.score([good, bomb], PROMPT)
    assert isinstance(refused.value, ValueError)
    assert refused.value.index == 1
    message = str(refused.value)
    assert "image 1" in message and "bomb.png" in message and "12000x12000" in message and "limit" in message
    with pytest.raises(ImageTooLargeError):
        image_size(bomb)


def test_pillows_own_bomb_check_is_reported_the_same_way(monkeypatch):
    small = encoded(photo((100, 100)), "PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(ImageTooLargeError, match="decompression bomb"):
        load_image(small, max_pixels=10**9, name="x.png")


def test_a_scorer_pixel_limit_is_its_own(tmp_path):
    folder = tmp_path / "model"
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    strict = Scorer(AestheticScorer.from_pretrained(folder), max_image_pixels=100 * 100)
    with pytest.raises(ImageTooLargeError, match="10,000"):
        strict.score([encoded(photo((101, 100)), "PNG")], PROMPT)


@pytest.mark.parametrize(
    ("content", "error", "problem"),
    [
        (encoded(photo(), "PNG")[:3000], UnreadableImageError, "cannot be decoded"),
        (encoded(photo(), "JPEG")[:2000], UnreadableImageError, "cannot be decoded"),
        (b"definitely not an image", UnreadableImageError, "not an image in an accepted format"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", UnreadableImageError, "accepted format"),
        (b"", UnreadableImageError, "accepted format"),
    ],
)
def test_unreadable_files_name_their_index(scorer, tmp_path, content, error, problem):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(error) as refused:
        scorer.score([encoded(photo(), "PNG"), encoded(photo(), "PNG"), path], PROMPT)
    assert refused.value.index == 2
    assert f"image 2: {path}: " in str(refused.value) and problem in str(refused.value)


def test_a_missing_file_is_a_value_error_and_a_file_not_found_error(scorer, tmp_path):
    with pytest.raises(ImageNotFoundError) as missing:
        scorer.score([tmp_path / "nowhere.png"], PROMPT)
    assert isinstance(missing.value, ValueError) and isinstance(missing.value, FileNotFoundError)
    assert "image 0" in str(missing.value) and "nowhere.png" in str(missing.value)
    with pytest.raises(ImageNotFoundError, match="not a regular file"):
        scorer.score([tmp_path], PROMPT)


@pytest.mark.parametrize(
    ("prompts", "index", "problem"),
    [
        (["a red poster", ""], 1, "empty"),
        (["   \n\t", "a red poster"], 0, "empty"),
        (["a red poster", "x" * (MAX_PROMPT_CHARS + 1)], 1, f"the limit is {MAX_PROMPT_CHARS:,}"),
        (["a red poster " * 60, "a red poster"], 0, "at most 128 tokens"),
        (["a red poster", None], 1, "must be a string"),
    ],
)
def test_bad_prompts_are_refused_with_their_index(scorer, prompts, index, problem):
    images = [photo(), photo()]
    with pytest.raises(PromptError) as refused:
        scorer.score(images, prompts)
    assert isinstance(refused.value, ValueError) and refused.value.index == index
    assert f"prompt {index}" in str(refused.value) and problem in str(refused.value)


def test_the_longest_prompt_the_model_reads_is_scored(scorer):
    limit = scorer.max_prompt_tokens
    words = ["poster"] * limit
    while len(scorer.model.tokenizer(" ".join(words))["input_ids"]) > limit:
        words.pop()
    (result,) = scorer.score([photo()], " ".join(words))
    assert set(result) == set(scorer.dimensions)
    with pytest.raises(PromptError, match=f"at most {limit} tokens"):
        scorer.score([photo()], " ".join([*words, "poster", "poster"]))


def test_image_errors_carry_their_input_name():
    with pytest.raises(ImageInputError) as refused:
        load_image(b"nope", name="holiday.png")
    assert refused.value.source == "holiday.png" and str(refused.value).startswith("holiday.png: ")
