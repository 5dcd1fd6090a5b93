"""Variable-size images without crop, stretch or letterbox (ARCHITECTURE §4).

* ``patch_grid`` / ``resize_to_budget``: scale an image, keeping its aspect ratio, so it
  covers at most ``patch_budget`` patches with both sides a multiple of the patch size.
* ``collate_images``: pad a batch only to its own largest height and width and return
  the patch-level validity mask the masked ViT forward needs.
* ``RatioBucketSampler``: put items whose images share a patch grid in one batch, so
  padding waste stays small, and report the padded-token fraction.
"""

from __future__ import annotations

import functools
import math
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from aesthetic_platform.images import MAX_IMAGE_PIXELS, ImageSource
from aesthetic_platform.images import load_image as shared_load_image
from aesthetic_platform.model.towers import ImagePreprocess

Grid = tuple[int, int]  # (rows, columns) of patches
#: A grid may deviate this much (relative) from the image's aspect ratio before we accept a smaller grid.
MAX_ASPECT_DISTORTION = 0.1
RGB_CHANNELS = 3
MAX_PIXEL_VALUE = 255.0


@functools.lru_cache(maxsize=4096)  # pure, and a scan over every row count: scoring asks for the same sizes again
def patch_grid(width: int, height: int, patch_budget: int) -> Grid:
    """The largest (rows, cols) grid within ``patch_budget`` whose shape matches ``width:height``.

    Among grids whose aspect ratio is within ``MAX_ASPECT_DISTORTION`` of the image's, the
    one with most patches wins (ties: least distortion); an extreme strip that no grid
    fits within tolerance gets the least distorted grid.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if patch_budget <= 0:
        raise ValueError(f"patch_budget must be positive, got {patch_budget}")
    ratio = width / height
    candidates: set[Grid] = set()
    for rows in range(1, patch_budget + 1):
        widest = patch_budget // rows
        for cols in {math.floor(rows * ratio), math.ceil(rows * ratio), widest}:
            candidates.add((rows, min(max(1, cols), widest)))

    def distortion(grid: Grid) -> float:
        return abs(math.log(grid[1] / grid[0]) - math.log(ratio))

    faithful = [grid for grid in candidates if distortion(grid) <= math.log1p(MAX_ASPECT_DISTORTION)]
    if faithful:
        return max(faithful, key=lambda grid: (grid[0] * grid[1], -distortion(grid), grid))
    return min(candidates, key=lambda grid: (distortion(grid), -grid[0] * grid[1], grid))


def load_image(image: ImageSource, fit_pixels: int | None = None, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """An 8-bit RGB PIL image from a path, bytes or a PIL image, through the shared loader (``aesthetic_platform.images``).

    Every mode is handled (16-bit scaled, alpha flattened, EXIF applied); oversized or
    unreadable inputs raise an ``ImageInputError`` (a ``ValueError``) naming the input.
    """
    return shared_load_image(image, fit_pixels=fit_pixels, max_pixels=max_pixels)


def budget_pixels(patch_size: int, patch_budget: int) -> int:
    """How many pixels the aspect-true resize produces at most: what a decode may be reduced towards."""
    return patch_budget * patch_size * patch_size


def resize_to_budget(image: Image.Image, patch_size: int, patch_budget: int) -> torch.Tensor:
    """[3, H, W] uint8: resized (never cropped or padded) so the image tiles exactly into its ``patch_grid``.

    Antialiased bicubic in torch's uint8 kernel: the same filter as Pillow's ``BICUBIC`` (most
    pixels equal, the rest a level apart, a few on sharp edges up to a few levels) at about a
    fifth of the cost, so a checkpoint trained on either sees the same pixels.
    """
    rows, cols = patch_grid(image.width, image.height, patch_budget)
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = torch.from_numpy(np.array(rgb, dtype=np.uint8)).permute(2, 0, 1)
    if pixels.shape[1:] == (rows * patch_size, cols * patch_size):
        return pixels.contiguous()
    resized = F.interpolate(pixels[None], size=(rows * patch_size, cols * patch_size), mode="bicubic", antialias=True)
    return resized[0].contiguous()


def to_tensor(pixels: torch.Tensor, preprocess: ImagePreprocess) -> torch.Tensor:
    """[3, H, W] uint8 -> float32 normalised with the tower's own mean/std (OpenCLIP preprocess config)."""
    mean = torch.tensor(preprocess.mean, dtype=torch.float32).view(RGB_CHANNELS, 1, 1)
    std = torch.tensor(preprocess.std, dtype=torch.float32).view(RGB_CHANNELS, 1, 1)
    scale = 1.0 / (MAX_PIXEL_VALUE * std)  # (x / 255 - mean) / std in one multiply-add
    return torch.addcmul(-mean / std, pixels.float(), scale)


def prepare_image(
    image: ImageSource, preprocess: ImagePreprocess, patch_budget: int, max_pixels: int = MAX_IMAGE_PIXELS
) -> torch.Tensor:
    """Path, bytes or PIL image of any size -> normalised tensor whose sides are multiples of the patch size.

    The decode is reduced towards the model's input size as soon as it is read, so no
    full-resolution copy is kept.
    """
    loaded = load_image(image, budget_pixels(preprocess.patch_size, patch_budget), max_pixels)
    return to_tensor(resize_to_budget(loaded, preprocess.patch_size, patch_budget), preprocess)


class PreparedImageCache:
    """Prepared tensors by image path, up to a byte budget.

    A training run meets every image several times: in each pair it belongs to (a candidate
    of a best-of-3 group is in about three) and again in every epoch. Decoding and resizing
    it each time cost the tiny model about an eighth of its training time on CPU. Nothing is
    evicted: past the budget the images met first stay cached and the rest are prepared on
    every access, so what is cached never depends on timing. Cached tensors are shared:
    callers copy them (collation does) and never write into them.
    """

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"the image cache budget must be >= 0 bytes, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self.used_bytes = 0
        self._tensors: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._tensors)

    def get(self, path: str | Path, prepare: Callable[[], torch.Tensor]) -> torch.Tensor:
        key = str(path)
        cached = self._tensors.get(key)
        if cached is not None:
            return cached
        tensor = prepare()
        size = tensor.numel() * tensor.element_size()
        if self.used_bytes + size <= self.budget_bytes:
            self._tensors[key] = tensor
            self.used_bytes += size
        return tensor


def tensor_grid(pixels: torch.Tensor, patch_size: int) -> Grid:
    height, width = pixels.shape[-2:]
    if height % patch_size or width % patch_size:
        raise ValueError(f"image tensor {height}x{width} is not a multiple of the patch size {patch_size}")
    return height // patch_size, width // patch_size


@dataclass
class ImageBatch:
    """Images padded bottom/right to the batch's own largest size.

    ``patch_mask[i, r, c]`` is True where patch (r, c) of image i holds real pixels.
    """

    pixels: torch.Tensor  # [B, 3, rows_max * patch, cols_max * patch]
    patch_mask: torch.Tensor  # [B, rows_max, cols_max] bool
    grids: torch.Tensor  # [B, 2] long: each image's own (rows, cols)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> ImageBatch:
        return ImageBatch(
            pixels=self.pixels.to(device=device, dtype=dtype or self.pixels.dtype),
            patch_mask=self.patch_mask.to(device),
            grids=self.grids.to(device),
        )

    def pin_memory(self) -> ImageBatch:
        """Page-locked copy, for DataLoader(pin_memory=True) and fast host-to-GPU copies."""
        return ImageBatch(self.pixels.pin_memory(), self.patch_mask.pin_memory(), self.grids.pin_memory())

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def padded_fraction(self) -> float:
        """Share of patch tokens in this batch that are padding."""
        return 1.0 - self.patch_mask.float().mean().item()


def collate_images(images: Sequence[torch.Tensor], patch_size: int) -> ImageBatch:
    """Pad each [3, h, w] tensor to the batch's max (h, w); the padded pixels are zeros."""
    if not images:
        raise ValueError("collate_images needs at least one image")
    grids = [tensor_grid(image, patch_size) for image in images]
    rows_max = max(rows for rows, _ in grids)
    cols_max = max(cols for _, cols in grids)
    pixels = images[0].new_zeros((len(images), RGB_CHANNELS, rows_max * patch_size, cols_max * patch_size))
    patch_mask = torch.zeros((len(images), rows_max, cols_max), dtype=torch.bool)
    for index, (image, (rows, cols)) in enumerate(zip(images, grids, strict=True)):
        pixels[index, :, : rows * patch_size, : cols * patch_size] = image
        patch_mask[index, :rows, :cols] = True
    return ImageBatch(pixels=pixels, patch_mask=patch_mask, grids=torch.tensor(grids, dtype=torch.long))


ItemGrids = tuple[Grid, ...]  # one grid per image an item holds (1 for an image, 2 for a winner/loser pair)


def padded_token_fraction(batches: Sequence[Sequence[int]], item_grids: Sequence[ItemGrids]) -> float:
    """Share of patch tokens that are padding when each side of each batch is padded to its own max."""
    padded = total = 0
    for batch in batches:
        for side in range(len(item_grids[batch[0]])):
            grids = [item_grids[index][side] for index in batch]
            rows_max = max(rows for rows, _ in grids)
            cols_max = max(cols for _, cols in grids)
            total += len(grids) * rows_max * cols_max
            padded += sum(rows_max * cols_max - rows * cols for rows, cols in grids)
    return padded / total if total else 0.0


def _aspect_key(grids: ItemGrids) -> tuple[float, ...]:
    return tuple(math.log(cols / rows) for rows, cols in grids)


class RatioBucketSampler:
    """Batch sampler that keeps items with the same patch grids (same aspect ratio) together.

    Items with identical grids fill whole batches first (no padding at all); the leftovers
    of every group are sorted by aspect ratio and chunked, so a mixed batch only mixes
    neighbouring ratios (with ``mix_leftovers=False`` each group's leftovers stay a
    smaller batch of their own: never any padding, as scoring wants). Batch order is
    shuffled per epoch (``set_epoch``).
    Works for single images (one grid per item) and pairs (winner grid, loser grid),
    where each side is padded separately.
    """

    def __init__(
        self,
        item_grids: Sequence[ItemGrids],
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        mix_leftovers: bool = True,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not item_grids:
            raise ValueError("RatioBucketSampler needs at least one item")
        sides = {len(grids) for grids in item_grids}
        if len(sides) != 1:
            raise ValueError(f"every item must hold the same number of images, got {sorted(sides)}")
        # hashable tuples of the same shape, whatever sequences came in (lists read back from JSON)
        self.item_grids = [cast(ItemGrids, tuple(tuple(grid) for grid in grids)) for grids in item_grids]
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.mix_leftovers = mix_leftovers
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed + self.epoch)
        groups: dict[ItemGrids, list[int]] = defaultdict(list)
        for index, grids in enumerate(self.item_grids):
            groups[grids].append(index)
        batches: list[list[int]] = []
        leftovers: list[int] = []
        for key in sorted(groups):
            members = groups[key]
            if self.shuffle:
                rng.shuffle(members)
            full = len(members) - len(members) % self.batch_size
            if not self.mix_leftovers and not self.drop_last:
                full = len(members)
            batches.extend(members[start : start + self.batch_size] for start in range(0, full, self.batch_size))
            if self.mix_leftovers:
                leftovers.extend(members[full:])
        leftovers.sort(key=lambda index: (_aspect_key(self.item_grids[index]), index))
        for start in range(0, len(leftovers), self.batch_size):
            chunk = leftovers[start : start + self.batch_size]
            if len(chunk) == self.batch_size or not self.drop_last:
                batches.append(chunk)
        if self.shuffle:
            rng.shuffle(batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def padded_fraction(self) -> float:
        """Padded share of patch tokens over one epoch of this sampler's batches."""
        return padded_token_fraction(self.batches(), self.item_grids)
