"""Every training knob in one pydantic model: the launchpad, the CLI and torchrun share it."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.schemas import DEFAULT_DIMENSIONS

Precision = Literal["auto", "fp32", "bf16"]


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(default="tiny", description="named model config (tiny, vit-l-14-xlmr-base, vit-l-14-xlmr-large)")
    image_pretrained: str | None = Field(default=None, description="override the image tower's OpenCLIP pretrained tag")
    text_pretrained: str | None = Field(default=None, description="override the text tower's HF name or folder")
    image_trainable_blocks: int | None = Field(default=None, ge=0, description="unfreeze the last N ViT blocks (None: config default)")
    text_trainable_blocks: int | None = Field(default=None, ge=0, description="unfreeze the last N text layers (None: config default)")
    dimensions: tuple[str, ...] = Field(default=DEFAULT_DIMENSIONS, description="scoring heads, one per dimension")
    loss_weights: dict[str, float] = Field(default_factory=dict, description="weight per dimension (missing = 1)")
    tie_threshold: float = Field(default=0.5, ge=0, description="teacher gaps below this are ties, masked per head")
    margin_weighting: bool = Field(default=False, description="weight pairs by the teacher gap")
    head_dropout: float | None = Field(default=None, ge=0, lt=1, description="override the heads' dropout")
    tower_dropout: float | None = Field(default=None, ge=0, lt=1, description="override every dropout inside both towers")
    head_lr: float = Field(default=1e-3, gt=0, description="learning rate of projections and heads")
    tower_lr: float = Field(default=1e-4, gt=0, description="learning rate of the unfrozen tower blocks")
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_steps: int = Field(default=10, ge=0)
    epochs: int = Field(default=8, ge=1)
    batch_size: int = Field(default=16, ge=1, description="global batch of pairs (split over DDP ranks)")
    patch_budget: int | None = Field(default=None, gt=0, description="override the image patch budget")
    precision: Precision = Field(default="auto", description="auto = bf16 autocast on CUDA, fp32 on CPU")
    seed: int = Field(default=0)
    max_steps: int | None = Field(default=None, ge=1, description="stop after this many optimizer steps")
    checkpoint_every: int = Field(default=25, ge=1, description="save a resumable checkpoint every N steps")
    grad_clip: float = Field(default=1.0, gt=0)
    early_stopping_patience: int = Field(default=3, ge=1, description="epochs without val improvement before stopping")
    gradient_checkpointing: bool = False

    def fingerprint(self, data_fingerprint: str) -> str:
        """Identity of a run: same config + same training pairs -> resume instead of restart."""
        payload = json.dumps({"config": self.model_dump(mode="json"), "data": data_fingerprint}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
