"""Sequence packing (NaViT-style): several images' patch sequences share one row of tokens.

Bucketing and padding still waste tokens whenever grids differ; packing concatenates the
token sequences of several images (class token + patches, each image at its own
aspect-true grid) into rows of at most ``token_budget`` tokens. The masked forward
(``vit.packed_vit_forward``) gives every image its own interpolated position field and a
block-diagonal attention mask, so a packed image's features do not depend on its
neighbours in the row.

* ``pack_lengths``: first-fit-decreasing into rows of ``token_budget`` tokens, then the same
  items spread over as few rows as possible with balanced loads (largest first onto the
  least-loaded row) so the rows, padded only to the longest one, waste almost nothing.
  Deterministic: ties are broken by index.
* ``pack_images``: [3, h, w] tensors -> ``PackedImages`` (patches flattened per row,
  segment ids, position indices, class-token slots); features come back in input order.
* ``PackedPairSampler``: a seeded, shuffled stream of items cut into batches; each batch's
  images are packed by ``pack_lengths``; reports the padded-token fraction.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from aesthetic_platform.model.batching import Grid, ItemGrids, tensor_grid

CLASS_TOKENS = 1
#: Default row length in images at the full patch budget. Masked-out attention is still computed, so
#: longer rows cost attention FLOPs: 2 per row measured fastest on CPU (tiny config) and keeps padding
#: about 1.3-1.5% (tiny) and 0.4% (ViT-L/14) on the five ratios; 4 per row pads under 1% but was slower.
IMAGES_PER_ROW = 2
PADDING_SEGMENT = -1


def tokens_for(grid: Grid) -> int:
    """Tokens one image occupies in a packed row: its class token and one per patch."""
    return CLASS_TOKENS + grid[0] * grid[1]


def default_token_budget(patch_budget: int) -> int:
    """Row length that holds ``IMAGES_PER_ROW`` images at the full patch budget."""
    return IMAGES_PER_ROW * (CLASS_TOKENS + patch_budget)


def _first_fit_decreasing(lengths: Sequence[int], order: list[int], token_budget: int) -> list[list[int]]:
    rows: list[list[int]] = []
    loads: list[int] = []
    for index in order:
        for row, load in enumerate(loads):
            if load + lengths[index] <= token_budget:
                rows[row].append(index)
                loads[row] += lengths[index]
                break
        else:
            rows.append([index])
            loads.append(lengths[index])
    return rows


def _balanced(lengths: Sequence[int], order: list[int], row_count: int) -> tuple[list[list[int]], int]:
    """Largest first onto the least-loaded row; returns the rows and the longest row."""
    rows: list[list[int]] = [[] for _ in range(row_count)]
    loads = [0] * row_count
    for index in order:
        row = min(range(row_count), key=lambda candidate: (loads[candidate], candidate))
        rows[row].append(index)
        loads[row] += lengths[index]
    return rows, max(loads)


def pack_lengths(lengths: Sequence[int], token_budget: int) -> list[list[int]]:
    """Rows of item indices, no row over ``token_budget`` tokens, padding kept small.

    First-fit decreasing fixes an upper bound on the number of rows; the fewest rows
    (from ``ceil(total / budget)`` up) whose balanced assignment stays within the budget
    wins, since a packed batch is padded to its longest row. Deterministic for given lengths.
    """
    if token_budget <= 0:
        raise ValueError(f"token_budget must be positive, got {token_budget}")
    too_long = [length for length in lengths if length > token_budget]
    if too_long:
        raise ValueError(f"an item of {max(too_long)} tokens does not fit a row of {token_budget}")
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda index: (-lengths[index], index))
    rows = _first_fit_decreasing(lengths, order, token_budget)
    for row_count in range(math.ceil(sum(lengths) / token_budget), len(rows) + 1):
        balanced, longest = _balanced(lengths, order, row_count)
        if longest <= token_budget:
            return [sorted(row) for row in balanced]
    return [sorted(row) for row in rows]


def packed_padding(lengths: Sequence[int], rows: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(padded slots, patch tokens) when ``rows`` are padded to the longest one."""
    if not rows:
        return 0, 0
    loads = [sum(lengths[index] for index in row) for row in rows]
    real = sum(loads)
    return len(rows) * max(loads) - real, real - CLASS_TOKENS * sum(len(row) for row in rows)


@dataclass
class PackedImages:
    """Images packed into rows of tokens; image ``i`` of the input list is segment ``i``.

    ``patches[r, t]`` holds the flattened pixels of the patch at token ``t`` of row ``r``
    (zeros on class-token and padding slots); ``segment_ids`` names the image each token
    belongs to (``PADDING_SEGMENT`` on padding); ``position_index`` indexes the table
    ``[class position, field of grid_table[0], field of grid_table[1], ...]``;
    ``class_slots[i]`` is the flat (row * length + t) slot of image i's class token.
    """

    patches: torch.Tensor  # [R, L, 3 * patch * patch]
    segment_ids: torch.Tensor  # [R, L] long
    position_index: torch.Tensor  # [R, L] long
    class_slots: torch.Tensor  # [N] long
    grids: torch.Tensor  # [N, 2] long
    grid_table: tuple[Grid, ...]

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> PackedImages:
        return PackedImages(
            patches=self.patches.to(device=device, dtype=dtype or self.patches.dtype),
            segment_ids=self.segment_ids.to(device),
            position_index=self.position_index.to(device),
            class_slots=self.class_slots.to(device),
            grids=self.grids.to(device),
            grid_table=self.grid_table,
        )

    def pin_memory(self) -> PackedImages:
        """Page-locked copy, for DataLoader(pin_memory=True) and fast host-to-GPU copies."""
        return PackedImages(
            patches=self.patches.pin_memory(),
            segment_ids=self.segment_ids.pin_memory(),
            position_index=self.position_index.pin_memory(),
            class_slots=self.class_slots.pin_memory(),
            grids=self.grids.pin_memory(),
            grid_table=self.grid_table,
        )

    def __len__(self) -> int:
        return self.grids.shape[0]

    @property
    def rows(self) -> int:
        return self.segment_ids.shape[0]

    @property
    def padded_fraction(self) -> float:
        """Share of patch slots that are padding (class tokens counted neither way)."""
        padded = int((self.segment_ids == PADDING_SEGMENT).sum())
        patches = int(self.segment_ids.numel()) - padded - len(self)
        return padded / (padded + patches) if padded + patches else 0.0

    def attention_mask(self) -> torch.Tensor:
        """[R, 1, L, L] bool, True where query and key belong to the same image (padding to padding)."""
        segments = self.segment_ids
        return (segments[:, :, None] == segments[:, None, :]).unsqueeze(1)


def flatten_patches(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    """[3, h, w] -> [rows * cols, 3 * patch * patch], row-major, each patch in conv-weight order."""
    rows, cols = tensor_grid(image, patch_size)
    channels = image.shape[0]
    blocks = image.reshape(channels, rows, patch_size, cols, patch_size).permute(1, 3, 0, 2, 4)
    return blocks.reshape(rows * cols, channels * patch_size * patch_size)


def pack_images(images: Sequence[torch.Tensor], patch_size: int, token_budget: int) -> PackedImages:
    """Pack [3, h, w] tensors (sides multiples of ``patch_size``) into rows of at most ``token_budget`` tokens."""
    if not images:
        raise ValueError("pack_images needs at least one image")
    grids = [tensor_grid(image, patch_size) for image in images]
    lengths = [tokens_for(grid) for grid in grids]
    rows = pack_lengths(lengths, token_budget)
    length = max(sum(lengths[index] for index in row) for row in rows)
    features = images[0].shape[0] * patch_size * patch_size
    patches = images[0].new_zeros((len(rows), length, features))
    segment_ids = torch.full((len(rows), length), PADDING_SEGMENT, dtype=torch.long)
    position_index = torch.zeros((len(rows), length), dtype=torch.long)
    class_slots = torch.zeros(len(images), dtype=torch.long)
    grid_table = tuple(sorted(set(grids)))
    offsets: dict[Grid, int] = {}
    next_offset = CLASS_TOKENS
    for grid in grid_table:
        offsets[grid] = next_offset
        next_offset += grid[0] * grid[1]
    for row, members in enumerate(rows):
        start = 0
        for index in members:
            count = lengths[index]
            end = start + count
            patches[row, start + CLASS_TOKENS : end] = flatten_patches(images[index], patch_size)
            segment_ids[row, start:end] = index
            first = offsets[grids[index]]
            position_index[row, start + CLASS_TOKENS : end] = torch.arange(first, first + count - CLASS_TOKENS)
            class_slots[index] = row * length + start
            start = end
    return PackedImages(
        patches=patches,
        segment_ids=segment_ids,
        position_index=position_index,
        class_slots=class_slots,
        grids=torch.tensor(grids, dtype=torch.long),
        grid_table=grid_table,
    )


class PackedPairSampler:
    """Batches of items from a seeded, shuffled stream; each batch's images are packed, not bucketed.

    Items are images (one grid) or winner/loser pairs (two grids): every image of a batch
    goes into the same packed rows, wherever its partner lands. Order is reshuffled per
    epoch (``set_epoch``) and deterministic for a seed.
    """

    def __init__(
        self,
        item_grids: Sequence[ItemGrids],
        batch_size: int,
        token_budget: int,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if not item_grids:
            raise ValueError("PackedPairSampler needs at least one item")
        self.item_lengths = [tuple(tokens_for((grid[0], grid[1])) for grid in grids) for grids in item_grids]
        self.batch_size = batch_size
        self.token_budget = token_budget
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        order = list(range(len(self.item_lengths)))
        if self.shuffle:
            random.Random(self.seed + self.epoch).shuffle(order)
        batches = [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches())

    def __len__(self) -> int:
        return len(self.batches())

    def rows_of(self, batch: Sequence[int]) -> list[list[int]]:
        """The packed rows of one batch, as indices into its images (every first image, then every second image)."""
        return pack_lengths(self._batch_lengths(batch), self.token_budget)

    def _batch_lengths(self, batch: Sequence[int]) -> list[int]:
        sides = len(self.item_lengths[batch[0]])
        return [self.item_lengths[index][side] for side in range(sides) for index in batch]

    def padded_fraction(self) -> float:
        """Padded share of patch slots over one epoch of packed batches."""
        padded = patches = 0
        for batch in self.batches():
            lengths = self._batch_lengths(batch)
            batch_padded, batch_patches = packed_padding(lengths, pack_lengths(lengths, self.token_budget))
            padded, patches = padded + batch_padded, patches + batch_patches
        return padded / (padded + patches) if padded + patches else 0.0
