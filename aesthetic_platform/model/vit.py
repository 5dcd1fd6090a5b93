"""A padding-exact forward for OpenCLIP's ``VisionTransformer`` on variable-size images.

OpenCLIP adds a fixed-size positional embedding (non-square or other-size inputs fail)
and has no key-padding mask. This forward reuses the module's own weights (conv1,
class_embedding, positional_embedding, ln_pre, transformer, ln_post, proj) but

* interpolates the patch positional embeddings to **each image's own grid**, so a
  16:9 image sees a 16:9 position field, not a squeezed square one;
* masks padded keys in every attention layer with an additive ``-inf`` mask of shape
  [B·heads, L, L], so no real token ever attends to padding; a padded batch therefore
  gives the same features as each image alone, and padded pixel values never matter.

Patch dropout (a training-time token drop) is not applied: it would break the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aesthetic_platform.model.batching import ImageBatch
from aesthetic_platform.model.towers import VisionTower

CLASS_TOKENS = 1


def _native_patch_positions(visual: VisionTower) -> torch.Tensor:
    """[1, width, rows0, cols0]: the pretrained patch position field, as an image."""
    rows, cols = visual.grid_size
    patch_positions = visual.positional_embedding[CLASS_TOKENS:]
    return patch_positions.reshape(1, rows, cols, -1).permute(0, 3, 1, 2)


def grid_positional_embedding(visual: VisionTower, rows: int, cols: int) -> torch.Tensor:
    """[rows*cols, width] patch positions resampled (bicubic) to one image's grid."""
    field = _native_patch_positions(visual)
    if (rows, cols) != tuple(field.shape[-2:]):
        shrinking = rows < field.shape[-2] or cols < field.shape[-1]
        field = F.interpolate(
            field.float(), size=(rows, cols), mode="bicubic", align_corners=False, antialias=shrinking
        )
    return field[0].permute(1, 2, 0).reshape(rows * cols, -1)


def batch_positional_embedding(visual: VisionTower, grids: torch.Tensor, rows_max: int, cols_max: int) -> torch.Tensor:
    """[B, rows_max*cols_max, width]: each image's own field top-left, zeros on padding."""
    width = visual.positional_embedding.shape[-1]
    canvas = visual.positional_embedding.new_zeros((grids.shape[0], rows_max, cols_max, width), dtype=torch.float32)
    resampled: dict[tuple[int, int], torch.Tensor] = {}
    for index, (rows, cols) in enumerate(grids.tolist()):
        if (rows, cols) not in resampled:
            resampled[(rows, cols)] = grid_positional_embedding(visual, rows, cols).float()
        canvas[index, :rows, :cols] = resampled[(rows, cols)].reshape(rows, cols, width)
    return canvas.reshape(grids.shape[0], rows_max * cols_max, width)


def key_padding_attention_mask(key_valid: torch.Tensor, heads: int, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive float mask [B·heads, L, L] with -inf on padded keys; None when nothing is padded."""
    if bool(key_valid.all()):
        return None
    batch, length = key_valid.shape
    additive = torch.zeros((batch, length), dtype=dtype, device=key_valid.device)
    additive.masked_fill_(~key_valid, float("-inf"))
    return additive[:, None, None, :].expand(batch, heads, length, length).reshape(batch * heads, length, length)


def _attention_heads(visual: VisionTower) -> int:
    return visual.transformer.resblocks[0].attn.num_heads


def _pool(visual: VisionTower, tokens: torch.Tensor, key_valid: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's pooling ('tok' or 'avg'), with the average taken over real patches only."""

    def pool(x: torch.Tensor) -> torch.Tensor:
        if visual.pool_type == "tok":
            return x[:, 0]
        if visual.pool_type == "avg":
            weights = key_valid[:, CLASS_TOKENS:].to(x.dtype).unsqueeze(-1)
            return (x[:, CLASS_TOKENS:] * weights).sum(dim=1) / weights.sum(dim=1)
        raise ValueError(f"unsupported OpenCLIP pool_type {visual.pool_type!r}")

    if visual.final_ln_after_pool:
        return visual.ln_post(pool(tokens))
    return pool(visual.ln_post(tokens))


def masked_vit_forward(visual: VisionTower, batch: ImageBatch) -> torch.Tensor:
    """[B, output_dim] image features that depend only on each image's real pixels."""
    patches = visual.conv1(batch.pixels.to(visual.conv1.weight.dtype))  # [B, width, rows_max, cols_max]
    count, width, rows_max, cols_max = patches.shape
    if (rows_max, cols_max) != tuple(batch.patch_mask.shape[1:]):
        raise ValueError(f"patch mask {tuple(batch.patch_mask.shape[1:])} does not match grid {(rows_max, cols_max)}")
    tokens = patches.flatten(2).transpose(1, 2)
    tokens = tokens + batch_positional_embedding(visual, batch.grids, rows_max, cols_max).to(tokens.dtype)
    class_token = (visual.class_embedding + visual.positional_embedding[0]).to(tokens.dtype)
    tokens = torch.cat([class_token.expand(count, 1, width), tokens], dim=1)
    tokens = visual.ln_pre(tokens)

    class_valid = torch.ones((count, CLASS_TOKENS), dtype=torch.bool, device=tokens.device)
    key_valid = torch.cat([class_valid, batch.patch_mask.flatten(1).to(tokens.device)], dim=1)
    attn_mask = key_padding_attention_mask(key_valid, _attention_heads(visual), tokens.dtype)
    tokens = visual.transformer(tokens, attn_mask=attn_mask)

    pooled = _pool(visual, tokens, key_valid)
    return pooled @ visual.proj if visual.proj is not None else pooled


def vit_output_dim(visual: VisionTower) -> int:
    return visual.proj.shape[1] if visual.proj is not None else visual.ln_post.normalized_shape[0]
