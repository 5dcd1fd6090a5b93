"""Every training knob, nested as the model, the loss and the optimizer see them.

The launchpad, the CLI and torchrun share this one model; the Dagster form subclasses
it. ``TrainConfig.loss`` is the loss's own config (the tie threshold lives there once),
and a trained model carries its ``TrainConfig`` beside its weights (``training.json``)
so evaluation uses the very threshold the model was trained with.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import write_json
from aesthetic_platform.model.config import ModelConfig, named_config
from aesthetic_platform.model.loss import RankingLossConfig

Precision = Literal["auto", "fp32", "bf16"]
Batching = Literal["bucketed", "packed"]
TRAINING_FILE = "training.json"
#: Beside the config in ``training.json``: per split, how many prompts the text tower read only in part.
PROMPT_LENGTHS_KEY = "prompt_lengths"


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageTowerOverrides(_Config):
    pretrained: str | None = Field(default=None, description="OpenCLIP pretrained tag or checkpoint (None: the named config's).")
    trainable_blocks: int | None = Field(default=None, ge=0, description="Unfreeze the last N ViT blocks (None: the named config's).")
    patch_budget: int | None = Field(default=None, gt=0, description="Most patches per image (None: the named config's).")


class TextTowerOverrides(_Config):
    pretrained: str | None = Field(default=None, description="HF model name or folder (None: the named config's).")
    trainable_blocks: int | None = Field(default=None, ge=0, description="Unfreeze the last N text layers (None: the named config's).")


class ModelOverrides(_Config):
    """Changes to the named model config, field by field as ``ModelConfig`` names them."""

    dimensions: list[str] | None = Field(default=None, description="Scoring heads, one per dimension (None: the named config's).")
    image: ImageTowerOverrides = Field(default_factory=ImageTowerOverrides)
    text: TextTowerOverrides = Field(default_factory=TextTowerOverrides)
    head_dropout: float | None = Field(default=None, ge=0, lt=1, description="The heads' dropout (None: the named config's).")
    tower_dropout: float | None = Field(default=None, ge=0, lt=1, description="Every dropout inside both towers (None: as built).")

    def apply(self, base: ModelConfig) -> ModelConfig:
        image = {**base.image.model_dump(), **self.image.model_dump(exclude_none=True)}
        text = base.text.model_dump()
        if self.text.pretrained is not None:
            text.update({"pretrained": self.text.pretrained, "architecture": None})
        if self.text.trainable_blocks is not None:
            text["trainable_blocks"] = self.text.trainable_blocks
        values = {**base.model_dump(), "image": image, "text": text}
        if self.dimensions is not None:
            values["dimensions"] = tuple(self.dimensions)
        if self.head_dropout is not None:
            values["head_dropout"] = self.head_dropout
        return ModelConfig.model_validate(values)


class OptimizerConfig(_Config):
    head_lr: float = Field(default=1e-3, gt=0, description="Learning rate of projections and heads.")
    tower_lr: float = Field(default=1e-4, gt=0, description="Learning rate of the unfrozen tower blocks.")
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(default=10, ge=0, description="Linear warm-up steps before the cosine decay.")
    grad_clip: float = Field(default=1.0, gt=0, description="Gradient norm clip.")


class TrainConfig(_Config):
    model: str = Field(default="tiny", description="Named model config (tiny, vit-l-14-xlmr-base, vit-l-14-xlmr-large).")
    overrides: ModelOverrides = Field(default_factory=ModelOverrides)
    loss: RankingLossConfig = Field(default_factory=RankingLossConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    epochs: int = Field(default=8, ge=1, description="Passes over the train split.")
    batch_size: int = Field(default=16, ge=1, description="Global batch of pairs (split over DDP ranks).")
    precision: Precision = Field(default="auto", description="auto = bf16 autocast on CUDA, fp32 on CPU.")
    seed: int = Field(default=0, description="Seeds weights, shuffling and dropout.")
    max_steps: int | None = Field(default=None, ge=1, description="Stop after this many optimizer steps.")
    checkpoint_every: int = Field(default=25, ge=1, description="Save a resumable checkpoint every N steps.")
    early_stopping_patience: int = Field(default=3, ge=1, description="Epochs without val improvement before stopping.")
    gradient_checkpointing: bool = Field(default=False, description="Trade compute for memory in both towers.")
    batching: Batching = Field(
        default="packed",
        description="packed = both sides of a batch packed several images to a row of tokens (block-diagonal attention), "
        "pairs matched back by id: ~1% padding; bucketed = ratio buckets, each side padded to its own grid.",
    )
    data_workers: int = Field(
        default=0, ge=0, description="DataLoader worker processes that decode and resize images (0: in the training process)."
    )
    image_cache_mb: int = Field(
        default=1024, ge=0,
        description="Prepared train and val images kept in memory, so each is decoded and resized once per run, not once per "
        "pair and epoch (0: prepare on every access). Beyond the budget the rest are prepared on every access. "
        "With data_workers the workers prepare train images on every access and only val images are kept.",
    )

    def model_config_for(self) -> ModelConfig:
        """The named model config with this run's overrides applied."""
        return self.overrides.apply(named_config(self.model))

    def fingerprint(self, data_fingerprint: str) -> str:
        """Identity of a run: same config + same architecture + same training pairs -> resume instead of restart.

        The architecture is the resolved model config, not its name: a named config changed in code
        (``tiny`` got a new position field) must not resume, or reuse, a run of the old one, whose
        weights have the same shapes and would load without a word."""
        # where and how often images are decoded changes nothing trained
        config = self.model_dump(mode="json", exclude={"data_workers", "image_cache_mb"})
        architecture = self.model_config_for().model_dump(mode="json")
        payload = json.dumps({"config": config, "data": data_fingerprint, "architecture": architecture}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def save_training_config(model_dir: Path, config: TrainConfig, prompt_lengths: dict[str, Any] | None = None) -> None:
    payload: dict[str, Any] = config.model_dump(mode="json")
    if prompt_lengths is not None:
        payload[PROMPT_LENGTHS_KEY] = prompt_lengths
    write_json(Path(model_dir) / TRAINING_FILE, payload)


def load_training_config(model_dir: Path) -> TrainConfig | None:
    """The config a saved model was trained with (None for a model saved outside training)."""
    path = Path(model_dir) / TRAINING_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop(PROMPT_LENGTHS_KEY, None)  # what the data was, not how to train
    return TrainConfig.model_validate(data)



def trained_loss_config(model_dir: Path) -> RankingLossConfig:
    """The loss settings a saved model was trained with; read on their own, so a model whose
    ``training.json`` has knobs this version does not know still evaluates with its own threshold."""
    path = Path(model_dir) / TRAINING_FILE
    if not path.exists():
        return RankingLossConfig()
    return RankingLossConfig.model_validate(json.loads(path.read_text(encoding="utf-8")).get("loss", {}))
