"""Candidate image generation: sizes per ratio, generators, the per-batch manifest."""

from aesthetic_platform.generation.base import GenerationRequest, ImageGenerator, params_json
from aesthetic_platform.generation.candidates import (
    CandidateConfig,
    CandidateRun,
    generate_candidates,
    load_manifest,
    plan_candidates,
)
from aesthetic_platform.generation.config import GeneratorConfig
from aesthetic_platform.generation.diffusers_gen import DiffusersGenerator
from aesthetic_platform.generation.poster import PosterRenderer
from aesthetic_platform.generation.sizes import assign_ratios, size_for_ratio

__all__ = [
    "CandidateConfig",
    "CandidateRun",
    "DiffusersGenerator",
    "GenerationRequest",
    "GeneratorConfig",
    "ImageGenerator",
    "PosterRenderer",
    "assign_ratios",
    "build_generator",
    "generate_candidates",
    "load_manifest",
    "params_json",
    "plan_candidates",
    "size_for_ratio",
]


def build_generator(config: GeneratorConfig, load: bool = False) -> ImageGenerator:
    """The generator a config names; ``load=True`` loads a diffusers pipeline now, so errors show early."""
    if config.generator == "poster":
        return PosterRenderer()
    generator = DiffusersGenerator(config)
    if load:
        generator.load()
    return generator
