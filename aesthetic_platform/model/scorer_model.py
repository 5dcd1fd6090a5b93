"""AestheticScorer: image tower + multilingual text tower -> one MLP head per dimension.

Seed 000 Q3-Q5: each tower is projected to 512, the two are concatenated (1024) and
every dimension gets its own ``Linear(1024,512)-ReLU-Dropout-Linear(512,1)`` head. The
output is ``{dim: logit}``, relative scores where larger is better.

A checkpoint is a folder: ``config.json`` (the full ``ModelConfig``, with both tower
architectures resolved so no registry or hub is needed to rebuild it),
``model.safetensors`` and ``tokenizer/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from aesthetic_platform.atomic import write_json, write_with
from aesthetic_platform.model.batching import ImageBatch
from aesthetic_platform.model.config import ImageTowerConfig, ModelConfig, TextTowerConfig
from aesthetic_platform.model.packing import PackedImages
from aesthetic_platform.model.text import masked_mean, tokenize
from aesthetic_platform.model.towers import (
    build_image_tower,
    build_text_tower,
    freeze_all_but_last,
    image_tower_blocks,
    image_tower_tail,
    resolved_open_clip_config,
    text_tower_blocks,
)
from aesthetic_platform.model.vit import masked_vit_forward, packed_vit_forward, vit_output_dim

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_FORMAT = "aesthetic-scorer/v1"
FUSED_TOWERS = 2


def dimension_head(in_dim: int, hidden_dim: int, dropout: float) -> nn.Sequential:
    """Seed 000 Q5 bottleneck: Linear-ReLU-Dropout-Linear to one scalar logit."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden_dim, 1))


class AestheticScorer(nn.Module):
    def __init__(self, config: ModelConfig, load_pretrained: bool = True, tokenizer_dir: str | Path | None = None):
        """``load_pretrained=False`` builds the architecture only (weights come from a checkpoint)."""
        super().__init__()
        self.config = config
        self.dimensions = tuple(config.dimensions)
        self.visual, self.preprocess = build_image_tower(config.image, load_weights=load_pretrained)
        self.text_encoder, self.tokenizer = build_text_tower(config.text, tokenizer_dir=tokenizer_dir)
        self.image_projection = nn.Linear(vit_output_dim(self.visual), config.projection_dim)
        self.text_projection = nn.Linear(self.text_encoder.config.hidden_size, config.projection_dim)
        fused = FUSED_TOWERS * config.projection_dim
        self.heads = nn.ModuleDict(
            {dim: dimension_head(fused, config.head_hidden_dim, config.head_dropout) for dim in self.dimensions}
        )
        self.apply_freezing()

    # ---- fine-tuning controls -------------------------------------------------------------

    def apply_freezing(self) -> None:
        """Freeze each tower except its configured last N blocks; projections and heads always train."""
        freeze_all_but_last(
            self.visual, image_tower_blocks(self.visual), image_tower_tail(self.visual), self.config.image.trainable_blocks
        )
        freeze_all_but_last(
            self.text_encoder, text_tower_blocks(self.text_encoder), [], self.config.text.trainable_blocks
        )

    def head_parameters(self) -> list[nn.Parameter]:
        """New, randomly initialised parameters: projections and heads."""
        modules = (self.image_projection, self.text_projection, self.heads)
        return [param for module in modules for param in module.parameters() if param.requires_grad]

    def tower_parameters(self) -> list[nn.Parameter]:
        """Pretrained parameters left trainable by ``trainable_blocks``."""
        towers = (self.visual, self.text_encoder)
        return [param for tower in towers for param in tower.parameters() if param.requires_grad]

    def param_groups(self, head_lr: float, tower_lr: float, weight_decay: float = 0.0) -> list[dict]:
        """Optimizer groups: fresh heads learn fast, pretrained towers slowly (no group if frozen)."""
        groups = [{"name": "heads", "params": self.head_parameters(), "lr": head_lr, "weight_decay": weight_decay}]
        towers = self.tower_parameters()
        if towers:
            groups.append({"name": "towers", "params": towers, "lr": tower_lr, "weight_decay": weight_decay})
        return groups

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        """Trade compute for activation memory in both towers (large batches of ViT-L on one GPU)."""
        self.visual.set_grad_checkpointing(enabled)
        encoder = self.text_encoder
        # transformers 5 renamed gradient_* to activation_checkpointing_*; 4.x has only the old names.
        if enabled and hasattr(encoder, "activation_checkpointing_enable"):
            encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        elif enabled:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        elif hasattr(encoder, "activation_checkpointing_disable"):
            encoder.activation_checkpointing_disable()
        else:
            encoder.gradient_checkpointing_disable()

    @property
    def gradient_checkpointing(self) -> bool:
        """True when both towers recompute activations in backward."""
        text_active = any(getattr(module, "gradient_checkpointing", False) for module in self.text_encoder.modules())
        return bool(self.visual.transformer.grad_checkpointing) and text_active

    # ---- forward --------------------------------------------------------------------------

    def encode_images(self, images: ImageBatch | PackedImages) -> torch.Tensor:
        """[B, projection_dim], in input order for packed images as for a padded batch."""
        if isinstance(images, PackedImages):
            return self.image_projection(packed_vit_forward(self.visual, images))
        return self.image_projection(masked_vit_forward(self.visual, images))

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """[B, projection_dim] from the masked mean of the last hidden states."""
        hidden = self.text_encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.text_projection(masked_mean(hidden, attention_mask))

    def score_features(self, image_features: torch.Tensor, text_features: torch.Tensor) -> dict[str, torch.Tensor]:
        fused = torch.cat([image_features, text_features.to(image_features.dtype)], dim=-1)
        return {dim: head(fused).squeeze(-1) for dim, head in self.heads.items()}

    def forward(
        self, images: ImageBatch | PackedImages, input_ids: torch.Tensor, attention_mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """{dim: [B] logit}, larger is better."""
        if input_ids.shape[0] != len(images):
            raise ValueError(f"{len(images)} images but {input_ids.shape[0]} prompts")
        return self.score_features(self.encode_images(images), self.encode_text(input_ids, attention_mask))

    # ---- convenience for callers that hold PIL images / paths -------------------------------

    def tokenize(self, prompts: list[str]) -> dict[str, torch.Tensor]:
        return tokenize(self.tokenizer, prompts, self.config.text.max_length)

    # ---- persistence ----------------------------------------------------------------------

    def portable_config(self) -> ModelConfig:
        """The config with both architectures inlined and no weights to fetch: what a checkpoint needs."""
        image = ImageTowerConfig(
            model_name=self.config.image.model_name,
            open_clip_config=resolved_open_clip_config(self.config.image),
            patch_budget=self.config.image.patch_budget,
            trainable_blocks=self.config.image.trainable_blocks,
        )
        architecture = self.text_encoder.config.to_diff_dict()
        architecture["model_type"] = self.text_encoder.config.model_type
        text = TextTowerConfig(
            architecture=architecture,
            max_length=self.config.text.max_length,
            trainable_blocks=self.config.text.trainable_blocks,
        )
        return self.config.model_copy(update={"image": image, "text": text})

    def save_pretrained(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.state_dict().items()}
        write_with(directory / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
        self.tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
        write_json(
            directory / CONFIG_FILE,
            {"format": CHECKPOINT_FORMAT, "source_config": self.config.name, **self.portable_config().model_dump()},
        )
        return directory

    @classmethod
    def from_pretrained(cls, directory: str | Path, map_location: str | torch.device = "cpu") -> AestheticScorer:
        directory = Path(directory)
        config = load_checkpoint_config(directory)
        weights = directory / WEIGHTS_FILE
        if not weights.is_file():
            raise FileNotFoundError(f"checkpoint {directory} has no {WEIGHTS_FILE}")
        model = cls(config, load_pretrained=False, tokenizer_dir=directory / TOKENIZER_DIR)
        state = load_file(str(weights), device=str(map_location))
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"checkpoint {directory} does not match its config: missing={missing} unexpected={unexpected}")
        return model


def load_checkpoint_config(directory: str | Path) -> ModelConfig:
    """The ``ModelConfig`` stored beside a checkpoint (clear errors for a wrong folder)."""
    path = Path(directory) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} is not a model checkpoint: {CONFIG_FILE} is missing")
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.pop("format", None) != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an {CHECKPOINT_FORMAT} checkpoint config")
    stored.pop("source_config", None)
    return ModelConfig.model_validate(stored)
