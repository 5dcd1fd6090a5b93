"""DiffusersGenerator: any diffusers text-to-image pipeline (default FLUX.1-schnell).

Noise comes from one CPU ``torch.Generator`` per image, seeded with that image's
seed, so an image depends on its own seed only — not on its batch neighbours or on
the device — which is what golden-seed analysis needs (seed 001). Requests are
grouped by size and run in batches of ``batch_size``.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from aesthetic_platform.generation.base import GenerationRequest
from aesthetic_platform.generation.config import GeneratorConfig


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class DiffusersGenerator:
    config: GeneratorConfig = field(default_factory=lambda: GeneratorConfig(generator="diffusers"))
    pipeline: Any = field(default=None, repr=False)

    @classmethod
    def from_pipeline(cls, pipeline: Any, model_id: str, **settings: Any) -> DiffusersGenerator:
        """Wrap an already-built pipeline (tests assemble a tiny one offline)."""
        return cls(GeneratorConfig(generator="diffusers", model_id=model_id, **settings), pipeline)

    @property
    def model_id(self) -> str:
        return self.config.model_id

    @property
    def steps(self) -> int:
        return self.config.steps

    @property
    def guidance(self) -> float:
        return self.config.guidance

    @property
    def scheduler(self) -> str:
        return self.config.scheduler

    @property
    def name(self) -> str:
        return f"diffusers/{self.model_id}"

    @property
    def params(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "steps": self.steps,
            "guidance": self.guidance,
            "max_sequence_length": self.config.max_sequence_length,
            "scheduler": self.scheduler_name,
        }

    @property
    def scheduler_name(self) -> str:
        if self.scheduler:
            return self.scheduler
        return type(self.pipeline.scheduler).__name__ if self.pipeline is not None else "default"

    def load(self) -> Any:
        """Load the pipeline once: bf16 on CUDA, fp32 on CPU."""
        if self.pipeline is None:
            from diffusers import DiffusionPipeline

            device = self.config.device or default_device()
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
            pipeline = DiffusionPipeline.from_pretrained(self.model_id, torch_dtype=dtype)
            self.pipeline = pipeline.to(device)
        if self.scheduler and type(self.pipeline.scheduler).__name__ != self.scheduler:
            import diffusers

            scheduler_cls = getattr(diffusers, self.scheduler, None)
            if scheduler_cls is None:
                raise ValueError(f"unknown diffusers scheduler {self.scheduler!r}")
            self.pipeline.scheduler = scheduler_cls.from_config(self.pipeline.scheduler.config)
        self.pipeline.set_progress_bar_config(disable=True)
        return self.pipeline

    def _call_kwargs(self, pipeline: Any) -> dict[str, Any]:
        accepted = inspect.signature(pipeline.__call__).parameters
        kwargs: dict[str, Any] = {"num_inference_steps": self.steps, "guidance_scale": self.guidance, "output_type": "pil"}
        if self.config.max_sequence_length is not None and "max_sequence_length" in accepted:
            kwargs["max_sequence_length"] = self.config.max_sequence_length
        return kwargs

    def generate(self, requests: list[GenerationRequest]) -> list[Image.Image]:
        pipeline = self.load()
        kwargs = self._call_kwargs(pipeline)
        by_size: dict[tuple[int, int], list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_size[(request.width, request.height)].append(index)
        images: list[Image.Image | None] = [None] * len(requests)
        for (width, height), indices in by_size.items():
            for start in range(0, len(indices), self.config.batch_size):
                chunk = indices[start : start + self.config.batch_size]
                generators = [torch.Generator("cpu").manual_seed(requests[i].seed) for i in chunk]
                with torch.inference_mode():
                    output = pipeline(
                        prompt=[requests[i].prompt for i in chunk], width=width, height=height, generator=generators, **kwargs
                    )
                for i, image in zip(chunk, output.images, strict=True):
                    images[i] = image.convert("RGB")
        return [image for image in images if image is not None]
