"""Aspect-true resize to a patch budget, padding collate, ratio-bucketed sampler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.data import astronaut

from aesthetic_platform.generation.sizes import size_for_ratio
from aesthetic_platform.model.batching import (
    MAX_ASPECT_DISTORTION,
    RatioBucketSampler,
    collate_images,
    load_image,
    padded_token_fraction,
    patch_grid,
    resize_to_budget,
)
from aesthetic_platform.schemas import RATIOS

VIT_L_BUDGET = 256


@pytest.mark.parametrize("ratio", list(RATIOS))
@pytest.mark.parametrize("budget", [64, VIT_L_BUDGET])
def test_grid_keeps_ratio_within_budget(ratio, budget):
    width, height = size_for_ratio(ratio, 1024 * 1024)
    rows, cols = patch_grid(width, height, budget)
    assert rows * cols <= budget
    assert rows * cols >= 0.75 * budget, "most of the budget is used"
    assert abs(math.log((cols / rows) / (width / height))) <= math.log1p(MAX_ASPECT_DISTORTION)


def test_grid_of_a_square_is_the_native_square():
    assert patch_grid(1024, 1024, VIT_L_BUDGET) == (16, 16)
    assert patch_grid(50, 50, 64) == (8, 8), "small images are scaled up to the same token count"


def test_extreme_strip_still_gets_a_grid():
    rows, cols = patch_grid(5000, 10, 64)
    assert (rows, cols) == (1, 64)


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="positive"):
        patch_grid(0, 10, 64)
    with pytest.raises(ValueError, match="patch_budget"):
        patch_grid(10, 10, 0)


def test_resize_never_crops_sides_are_patch_multiples():
    image = Image.new("RGB", (1280, 720))
    resized = resize_to_budget(image, 14, VIT_L_BUDGET)
    assert resized.dtype == torch.uint8
    height, width = resized.shape[1:]
    assert width % 14 == 0 and height % 14 == 0
    assert width > height
    rows, cols = patch_grid(1280, 720, VIT_L_BUDGET)
    assert (width, height) == (cols * 14, rows * 14)


@pytest.mark.parametrize("size", [(512, 512), (1280, 720), (300, 700), (40, 90)])
def test_resize_is_pillows_bicubic_filter(size):
    """The torch uint8 kernel stands in for Pillow's BICUBIC: a trained checkpoint must see the same pixels."""
    photo = Image.fromarray(astronaut()).resize(size, Image.Resampling.BOX)
    resized = resize_to_budget(photo, 16, 64)
    height, width = resized.shape[1:]
    reference = torch.from_numpy(np.asarray(photo.resize((width, height), Image.Resampling.BICUBIC)).copy()).permute(2, 0, 1)
    difference = (resized.int() - reference.int()).abs()
    assert difference.float().mean() < 0.25  # rounding: most pixels equal, the rest one level apart
    assert (difference > 1).float().mean() < 0.01  # a few sharp edges differ by more (both clip between passes)
    assert difference.max() <= 6


def test_collate_pads_to_batch_max_with_patch_mask():
    wide, tall = torch.ones(3, 32, 64), torch.ones(3, 48, 16)
    batch = collate_images([wide, tall], 16)
    assert batch.pixels.shape == (2, 3, 48, 64)
    assert batch.grids.tolist() == [[2, 4], [3, 1]]
    assert batch.patch_mask[0].sum() == 8 and batch.patch_mask[0, :2, :4].all()
    assert batch.patch_mask[1].sum() == 3 and batch.patch_mask[1, :3, :1].all()
    assert batch.padded_fraction == pytest.approx(1 - 11 / 24)
    assert batch.pixels[0, :, 32:].abs().sum() == 0
    with pytest.raises(ValueError, match="multiple of the patch size"):
        collate_images([torch.ones(3, 20, 16)], 16)


def test_load_image_names_the_bad_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        load_image(tmp_path / "missing.png")
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png"):
        load_image(broken)


def _mixed_grids(count: int, budget: int = 64) -> list[tuple[tuple[int, int], ...]]:
    ratios = list(RATIOS)
    return [(patch_grid(*size_for_ratio(ratios[(i * 7) % 5], 512 * 512), budget),) for i in range(count)]


def test_bucketed_batches_share_grids_and_cover_every_item():
    grids = _mixed_grids(103)
    sampler = RatioBucketSampler(grids, batch_size=8, seed=3)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(103))
    pure = [b for b in batches if len({grids[i] for i in b}) == 1]
    assert len(pure) >= len(batches) - len({g for g in grids})  # at most one mixed leftover batch per grid
    sequential = [list(range(s, min(s + 8, 103))) for s in range(0, 103, 8)]
    assert sampler.padded_fraction() < padded_token_fraction(sequential, grids) / 3
    sampler.set_epoch(1)
    assert sampler.batches() != batches, "a new epoch reshuffles"


def test_pair_buckets_make_both_sides_uniform():
    singles = _mixed_grids(60)
    pairs = [(singles[i][0], singles[(i * 3 + 1) % 60][0]) for i in range(60)]
    sampler = RatioBucketSampler(pairs, batch_size=4, shuffle=False)
    for batch in sampler.batches():
        if len({pairs[i] for i in batch}) == 1:
            assert padded_token_fraction([batch], pairs) == 0.0
    assert 0.0 <= sampler.padded_fraction() < 0.1


def test_sampler_rejects_bad_input():
    with pytest.raises(ValueError, match="batch_size"):
        RatioBucketSampler(_mixed_grids(4), batch_size=0)
    with pytest.raises(ValueError, match="same number of images"):
        RatioBucketSampler([((1, 1),), ((1, 1), (2, 2))], batch_size=2)


def test_image_cache_keeps_the_images_met_first_up_to_its_budget():
    from aesthetic_platform.model.batching import PreparedImageCache

    made: list[str] = []

    def maker(name: str):
        def make() -> torch.Tensor:
            made.append(name)
            return torch.zeros(3, 16, 16)  # 3,072 bytes

        return make

    cache = PreparedImageCache(budget_bytes=2 * 3 * 16 * 16 * 4)
    for name in ("a", "b", "c", "a", "b", "c"):
        cache.get(name, maker(name))
    assert made == ["a", "b", "c", "c"] and len(cache) == 2 and cache.used_bytes == cache.budget_bytes
    assert cache.get("a", maker("a")) is cache.get("a", maker("a"))
    with pytest.raises(ValueError, match="budget must be >= 0"):
        PreparedImageCache(-1)
