"""The image tower sees the whole image and nothing but the image (ARCHITECTURE §4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from aesthetic_platform.model.batching import collate_images, prepare_image
from aesthetic_platform.model.vit import masked_vit_forward

PADDING_TOLERANCE = 1e-4  # fp32, issue 4 "Padding invariance"
BORDER_FRACTION = 0.15
#: scores must move by clearly more than float noise when real pixels change
MIN_VISIBLE_CHANGE = 1e-3
PROMPT = "a red and gold poster, centered composition"


def _tensor(model, image):
    return prepare_image(image, model.preprocess, model.config.image.patch_budget)


def _scores(model, tensors, prompts=None):
    batch = collate_images(tensors, model.preprocess.patch_size)
    text = model.tokenize(prompts or [PROMPT] * len(tensors))
    with torch.no_grad():
        logits = model(batch, **text)
    return torch.stack([logits[dim] for dim in model.dimensions], dim=1)  # [B, D]


def _padders(model, sample_images, target_grid):
    """Images of other ratios that are larger than the target in at least one side."""
    padders = []
    for image in sample_images.values():
        tensor = _tensor(model, image)
        grid = tuple(side // model.preprocess.patch_size for side in tensor.shape[-2:])
        if grid != target_grid and (grid[0] > target_grid[0] or grid[1] > target_grid[1]):
            padders.append(tensor)
    return padders


def test_padding_invariance_every_sample(tiny_model, sample_images):
    """Alone vs. in a batch padded (both sides) by larger images of other ratios: <= 1e-4."""
    checked = 0
    for name, image in sample_images.items():
        tensor = _tensor(tiny_model, image)
        grid = tuple(side // tiny_model.preprocess.patch_size for side in tensor.shape[-2:])
        padders = _padders(tiny_model, sample_images, grid)
        if not padders:
            continue
        alone = _scores(tiny_model, [tensor])
        batch = collate_images([padders[0], tensor, *padders[1:]], tiny_model.preprocess.patch_size)
        assert not bool(batch.patch_mask[1].all()), f"{name}: the batch must actually pad this image"
        together = _scores(tiny_model, [padders[0], tensor, *padders[1:]])[1:2]
        difference = (alone - together).abs().max().item()
        assert difference <= PADDING_TOLERANCE, f"{name}: padded-batch scores differ by {difference}"
        checked += 1
    assert checked >= len(sample_images) - 1


def test_padding_would_leak_without_the_mask(tiny_model, sample_images):
    """Control: running the same padded batch with the mask switched off changes the scores.

    Proves the invariance test above measures something the key mask is responsible for.
    """
    visual = tiny_model.visual
    square = _tensor(tiny_model, sample_images["poster_1:1"])
    wide = _tensor(tiny_model, sample_images["poster_16:9"])
    tall = _tensor(tiny_model, sample_images["poster_9:16"])
    batch = collate_images([wide, square, tall], tiny_model.preprocess.patch_size)
    unmasked = collate_images([wide, square, tall], tiny_model.preprocess.patch_size)
    unmasked.patch_mask = torch.ones_like(unmasked.patch_mask)
    unmasked.grids = torch.tensor([list(unmasked.patch_mask.shape[1:])] * 3)
    with torch.no_grad():
        masked = masked_vit_forward(visual, batch)[1]
        leaked = masked_vit_forward(visual, unmasked)[1]
        alone = masked_vit_forward(visual, collate_images([square], tiny_model.preprocess.patch_size))[0]
    assert (masked - alone).abs().max() <= PADDING_TOLERANCE
    assert (leaked - alone).abs().max() > MIN_VISIBLE_CHANGE


def test_padded_pixel_values_change_nothing(tiny_model, sample_images):
    """Exact mask: garbage in the padded area gives bit-identical scores."""
    tensors = [_tensor(tiny_model, sample_images[name]) for name in ("poster_16:9", "poster_9:16", "astronaut")]
    batch = collate_images(tensors, tiny_model.preprocess.patch_size)
    text = tiny_model.tokenize([PROMPT] * len(tensors))
    pixel_mask = batch.patch_mask.repeat_interleave(tiny_model.preprocess.patch_size, 1).repeat_interleave(
        tiny_model.preprocess.patch_size, 2
    )
    assert not bool(pixel_mask.all())
    noisy = collate_images(tensors, tiny_model.preprocess.patch_size)
    generator = torch.Generator().manual_seed(7)
    garbage = torch.randn(noisy.pixels.shape, generator=generator) * 50
    noisy.pixels = torch.where(pixel_mask[:, None], noisy.pixels, garbage)
    assert not torch.equal(noisy.pixels, batch.pixels)
    with torch.no_grad():
        clean_scores = tiny_model(batch, **text)
        noisy_scores = tiny_model(noisy, **text)
    for dim in tiny_model.dimensions:
        assert torch.equal(clean_scores[dim], noisy_scores[dim]), dim


def _replace_border(image: Image.Image, fraction: float) -> Image.Image:
    """Same centre, different outer ``fraction`` band on all four sides (inverted colours)."""
    array = np.asarray(image.convert("RGB")).copy()
    height, width = array.shape[:2]
    band_h, band_w = int(round(height * fraction)), int(round(width * fraction))
    inside = np.zeros((height, width), dtype=bool)
    inside[band_h : height - band_h, band_w : width - band_w] = True
    array[~inside] = 255 - array[~inside]
    return Image.fromarray(array)


@pytest.mark.parametrize("name", ["poster_16:9", "astronaut_wide_odd"])
def test_border_pixels_count(tiny_model, sample_images, name):
    """No crop: changing only the outer 15% border of a wide image changes its scores."""
    image = sample_images[name]
    assert image.width > image.height
    changed = _replace_border(image, BORDER_FRACTION)
    centre = (slice(int(image.height * 0.2), int(image.height * 0.8)), slice(int(image.width * 0.2), int(image.width * 0.8)))
    assert np.array_equal(np.asarray(changed)[centre], np.asarray(image.convert("RGB"))[centre])
    before = _scores(tiny_model, [_tensor(tiny_model, image)])
    after = _scores(tiny_model, [_tensor(tiny_model, changed)])
    assert (before - after).abs().max().item() > MIN_VISIBLE_CHANGE


def test_native_grid_matches_open_clip_forward(tiny_model):
    """A square image at the native grid uses OpenCLIP's own positions: matches the stock forward."""
    visual = tiny_model.visual
    native = visual.image_size
    pixels = torch.randn(1, 3, *native, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        stock = visual(pixels)
        ours = masked_vit_forward(visual, collate_images([pixels[0]], tiny_model.preprocess.patch_size))
    assert torch.allclose(stock, ours, atol=1e-5)
