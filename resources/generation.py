"""Image generator resource: the procedural poster renderer or any diffusers pipeline."""


from typing import Literal

import dagster as dg
from pydantic import Field

from aesthetic_platform.generation import DiffusersGenerator, ImageGenerator, PosterRenderer
from aesthetic_platform.generation.diffusers_gen import DEFAULT_MODEL


class ImageGeneratorResource(dg.ConfigurableResource):
    """Which text-to-image backend renders candidates."""

    kind: Literal["poster", "diffusers"] = Field(
        default="poster", description="'poster': built-in deterministic renderer (no GPU); 'diffusers': a diffusers pipeline."
    )
    model_id: str = Field(default=DEFAULT_MODEL, description="diffusers model id or local folder (kind=diffusers).")
    steps: int = Field(default=4, ge=1, description="Denoising steps (FLUX.1-schnell: 4).")
    guidance: float = Field(default=0.0, ge=0.0, description="Guidance / CFG scale (FLUX.1-schnell: 0).")
    max_sequence_length: int = Field(default=256, ge=1, description="T5 prompt tokens for FLUX pipelines.")
    scheduler: str = Field(default="", description="diffusers scheduler class name; empty keeps the pipeline's own.")
    batch_size: int = Field(default=4, ge=1, description="Images per pipeline call (same size only).")
    device: str = Field(default="", description="'cuda', 'cpu' or empty for automatic.")

    def build(self) -> ImageGenerator:
        if self.kind == "poster":
            return PosterRenderer()
        return DiffusersGenerator(
            model_id=self.model_id, steps=self.steps, guidance=self.guidance,
            max_sequence_length=self.max_sequence_length, scheduler=self.scheduler or None,
            batch_size=self.batch_size, device=self.device or None,
        )
