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

``packed_vit_forward`` runs the same weights over ``PackedImages`` (several images per
row of tokens, ``model/packing.py``): each image keeps its own position field, the
attention mask is block-diagonal (boolean, through ``scaled_dot_product_attention``) and
pooling goes by segment, so a packed image's features equal its unpacked ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch.utils.checkpoint import checkpoint

from aesthetic_platform.model.batching import ImageBatch
from aesthetic_platform.model.packing import PADDING_SEGMENT, PackedImages
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


def _packed_block(block: ResidualAttentionBlock, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's residual block with a boolean [R, 1, L, L] mask through SDPA (same weights, same maths)."""
    attn = block.attn
    rows, length, width = x.shape
    heads = attn.num_heads
    qkv = F.linear(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.reshape(rows, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    dropout = attn.dropout if attn.training else 0.0
    attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
    attended = attn.out_proj(attended.transpose(1, 2).reshape(rows, length, width))
    x = x + block.ls_1(attended)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _packed_positions(visual: VisionTower, packed: PackedImages, dtype: torch.dtype) -> torch.Tensor:
    """[R, L, width]: the class position, then each image's own resampled field, gathered per token."""
    fields = [visual.positional_embedding[:CLASS_TOKENS].float()]
    fields += [grid_positional_embedding(visual, rows, cols).float() for rows, cols in packed.grid_table]
    return torch.cat(fields).to(dtype)[packed.position_index]


def packed_vit_forward(visual: VisionTower, packed: PackedImages) -> torch.Tensor:
    """[N, output_dim] features of packed images, in input order; each depends only on its own pixels."""
    blocks = list(visual.transformer.resblocks)
    if not all(type(block) is ResidualAttentionBlock for block in blocks):
        raise ValueError("the packed forward supports OpenCLIP's default ResidualAttentionBlock only")
    if not visual.transformer.batch_first:
        raise ValueError("the packed forward needs a batch-first OpenCLIP transformer")
    weight = visual.conv1.weight
    tokens = F.linear(packed.patches.to(weight.dtype), weight.reshape(weight.shape[0], -1), visual.conv1.bias)
    rows, length, width = tokens.shape
    is_class = torch.zeros(rows * length, dtype=torch.bool, device=tokens.device)
    is_class[packed.class_slots] = True
    is_class = is_class.reshape(rows, length, 1)
    tokens = torch.where(is_class, visual.class_embedding.to(tokens.dtype), tokens)
    tokens = visual.ln_pre(tokens + _packed_positions(visual, packed, tokens.dtype))

    mask = packed.attention_mask()
    for block in blocks:
        if visual.transformer.grad_checkpointing and torch.is_grad_enabled():
            tokens = checkpoint(_packed_block, block, tokens, mask, use_reentrant=False)
        else:
            tokens = _packed_block(block, tokens, mask)

    pooled = _packed_pool(visual, tokens, packed, is_class)
    return pooled @ visual.proj if visual.proj is not None else pooled


def _packed_pool(visual: VisionTower, tokens: torch.Tensor, packed: PackedImages, is_class: torch.Tensor) -> torch.Tensor:
    """OpenCLIP's pooling per segment: the image's class token ('tok') or the mean of its patches ('avg')."""

    def pool(x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if visual.pool_type == "tok":
            return flat[packed.class_slots]
        if visual.pool_type == "avg":
            segments = packed.segment_ids.reshape(-1)
            patch = (segments != PADDING_SEGMENT) & ~is_class.reshape(-1)
            count = len(packed)
            sums = flat.new_zeros((count, flat.shape[-1])).index_add(0, segments[patch], flat[patch])
            sizes = torch.bincount(segments[patch], minlength=count).to(flat.dtype).unsqueeze(-1)
            return sums / sizes
        raise ValueError(f"unsupported OpenCLIP pool_type {visual.pool_type!r}")

    if visual.final_ln_after_pool:
        return visual.ln_post(pool(tokens))
    return pool(visual.ln_post(tokens))


def vit_output_dim(visual: VisionTower) -> int:
    return visual.proj.shape[1] if visual.proj is not None else visual.ln_post.normalized_shape[0]
