"""Which text-to-image backend renders images, and how it samples: one config for every caller."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DIFFUSERS_MODEL = "black-forest-labs/FLUX.1-schnell"
MAX_STEPS = 200
MAX_GUIDANCE = 50.0


class GeneratorConfig(BaseModel):
    """The candidate chain's resource and the workbench's settings tab both build generators from this."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    generator: Literal["poster", "diffusers"] = Field(
        default="poster", description="'poster': built-in deterministic renderer (no GPU); 'diffusers': a diffusers pipeline."
    )
    model_id: str = Field(default=DEFAULT_DIFFUSERS_MODEL, min_length=1, description="diffusers model id or local folder (diffusers).")
    steps: int = Field(default=4, ge=1, le=MAX_STEPS, description="Denoising steps (FLUX.1-schnell: 4).")
    guidance: float = Field(default=0.0, ge=0.0, le=MAX_GUIDANCE, description="Guidance / CFG scale (FLUX.1-schnell: 0).")
    max_sequence_length: int | None = Field(default=256, ge=1, description="T5 prompt tokens for FLUX pipelines (None: the pipeline's).")
    scheduler: str = Field(default="", description="diffusers scheduler class name; empty keeps the pipeline's own.")
    batch_size: int = Field(default=4, ge=1, description="Images per pipeline call (same size only).")
    device: str = Field(default="", description="'cuda', 'cpu' or empty for automatic.")
