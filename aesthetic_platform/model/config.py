"""Named, serialisable configurations of the student model (ARCHITECTURE §4).

A model is fully described by one ``ModelConfig``: the scoring dimensions, both towers
and the head shape. The same object is written as JSON beside every checkpoint, so a
saved model can be rebuilt without a network and without code changes. Named configs
give the production model (``vit-l-14-xlmr-base``) and a tiny random-init model
(``tiny``) that trains on a CPU in seconds for tests and the demo.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

#: Seed 000 Q5: each tower is projected to 512, the fusion is 1024, heads have 512 hidden units.
PROJECTION_DIM = 512
HEAD_HIDDEN_DIM = 512
HEAD_DROPOUT = 0.1
#: ViT-L/14 at its native 224 px sees a 16x16 grid; keep that token count for any ratio.
VIT_L_14_PATCH_BUDGET = 256
#: XLM-R was pretrained on 512 positions; prompts rarely need more than 128 tokens.
TEXT_MAX_LENGTH = 128


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageTowerConfig(_Config):
    """An OpenCLIP vision transformer, by registry name or by an inline model JSON."""

    model_name: str = Field(description="OpenCLIP model name, e.g. ViT-L-14")
    pretrained: str | None = Field(
        default=None, description="OpenCLIP pretrained tag or checkpoint file; None = random init"
    )
    open_clip_config: dict[str, Any] | None = Field(
        default=None,
        description="model JSON (embed_dim, vision_cfg, text_cfg) registered under model_name before creation",
    )
    patch_budget: int = Field(gt=0, description="most patches an image may cover after the aspect-true resize")
    trainable_blocks: int | None = Field(
        default=None, ge=0, description="train only the last N transformer blocks (+ final norm/proj); None = all"
    )


class TextTowerConfig(_Config):
    """A Hugging Face encoder (XLM-R), by hub name/local dir or by an inline architecture."""

    pretrained: str | None = Field(
        default=None, description="HF model name or local dir whose weights are loaded; None = random init"
    )
    architecture: dict[str, Any] | None = Field(
        default=None, description="transformers config dict (model_type included) for a random-init tower"
    )
    tokenizer: str | None = Field(
        default=None,
        description="HF tokenizer name or dir; None = the pretrained model's own, else the built-in tiny tokenizer",
    )
    max_length: int = Field(default=TEXT_MAX_LENGTH, gt=2)
    trainable_blocks: int | None = Field(
        default=None, ge=0, description="train only the last N encoder layers; None = all"
    )

    @model_validator(mode="after")
    def _one_source(self) -> TextTowerConfig:
        if (self.pretrained is None) == (self.architecture is None):
            raise ValueError("text tower needs exactly one of 'pretrained' (name/dir) or 'architecture' (config dict)")
        return self


class ModelConfig(_Config):
    """Everything needed to rebuild an ``AestheticScorer``."""

    name: str
    dimensions: tuple[str, ...] = DEFAULT_DIMENSIONS
    image: ImageTowerConfig
    text: TextTowerConfig
    projection_dim: int = Field(default=PROJECTION_DIM, gt=0)
    head_hidden_dim: int = Field(default=HEAD_HIDDEN_DIM, gt=0)
    head_dropout: float = Field(default=HEAD_DROPOUT, ge=0.0, lt=1.0)

    @model_validator(mode="after")
    def _dimensions_valid(self) -> ModelConfig:
        if not self.dimensions:
            raise ValueError("a model needs at least one scoring dimension")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ValueError(f"duplicate scoring dimensions: {list(self.dimensions)}")
        return self


#: A ViT small enough for CPU tests: 64 wide, 2 blocks, 16 px patches, 8x8 native grid. Its position
#: field starts as OpenCLIP's fixed 2-D sin-cos table (then trains): a random-init tower learning from a
#: few thousand pairs gets where-in-the-frame for free, which composition needs (README, demo section).
TINY_OPEN_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 64,
    "vision_cfg": {
        "image_size": 128, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16, "pos_embed_type": "sin_cos_2d",
    },
    "text_cfg": {"context_length": 16, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}

#: XLM-R with 64 hidden units and 2 layers; vocab_size is set from the tiny tokenizer at build time.
TINY_XLMR_ARCHITECTURE: dict[str, Any] = {
    "model_type": "xlm-roberta",
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
    "max_position_embeddings": 130,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

#: xlm-roberta-base hyper-parameters, for random-init runs (benchmarks) where the hub is out of reach.
XLMR_BASE_ARCHITECTURE: dict[str, Any] = {
    "model_type": "xlm-roberta",
    "vocab_size": 250002,
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
    "pad_token_id": 1,
    "bos_token_id": 0,
    "eos_token_id": 2,
}

TINY = ModelConfig(
    name="tiny",
    image=ImageTowerConfig(model_name="aesthetic-tiny-vit", open_clip_config=TINY_OPEN_CLIP_CONFIG, patch_budget=64),
    text=TextTowerConfig(architecture=TINY_XLMR_ARCHITECTURE),
)

VIT_L_14_XLMR_BASE = ModelConfig(
    name="vit-l-14-xlmr-base",
    image=ImageTowerConfig(
        model_name="ViT-L-14",
        pretrained="laion2b_s32b_b82k",
        patch_budget=VIT_L_14_PATCH_BUDGET,
        trainable_blocks=4,
    ),
    text=TextTowerConfig(pretrained="xlm-roberta-base", trainable_blocks=4),
)

VIT_L_14_XLMR_LARGE = VIT_L_14_XLMR_BASE.model_copy(
    update={
        "name": "vit-l-14-xlmr-large",
        "text": TextTowerConfig(pretrained="xlm-roberta-large", trainable_blocks=4),
    }
)

#: Same architecture as production with no weights to fetch: for benchmarks on a bare GPU box.
VIT_L_14_XLMR_BASE_RANDOM = VIT_L_14_XLMR_BASE.model_copy(
    update={
        "name": "vit-l-14-xlmr-base-random",
        "image": VIT_L_14_XLMR_BASE.image.model_copy(update={"pretrained": None, "trainable_blocks": None}),
        "text": TextTowerConfig(architecture=XLMR_BASE_ARCHITECTURE),
    }
)

MODEL_CONFIGS: dict[str, ModelConfig] = {
    config.name: config for config in (TINY, VIT_L_14_XLMR_BASE, VIT_L_14_XLMR_LARGE, VIT_L_14_XLMR_BASE_RANDOM)
}


def named_config(name: str, **overrides: Any) -> ModelConfig:
    """A named config, optionally with top-level fields replaced (e.g. ``dimensions``)."""
    if name not in MODEL_CONFIGS:
        raise KeyError(f"unknown model config {name!r}; known: {sorted(MODEL_CONFIGS)}")
    base = MODEL_CONFIGS[name]
    return ModelConfig.model_validate({**base.model_dump(), **overrides}) if overrides else base
