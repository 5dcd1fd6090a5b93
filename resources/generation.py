"""Image generator resource: the procedural poster renderer or any diffusers pipeline."""

import dagster as dg

from aesthetic_platform.generation import GeneratorConfig, ImageGenerator, build_generator


class ImageGeneratorResource(dg.ConfigurableResource, GeneratorConfig):
    """``GeneratorConfig`` as a resource (same fields, same defaults): which backend renders candidates."""

    def build(self) -> ImageGenerator:
        return build_generator(self)
