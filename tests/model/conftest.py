"""Shared fixtures for the student-model tests: a tiny random model and real images.

``sample_images`` mixes a real photo (``skimage.data.astronaut``), procedural posters in
every ratio and odd, non-multiple sizes; the invariance tests loop over all of them,
so swapping in other images only means editing this list.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from aesthetic_platform.generation.base import GenerationRequest
from aesthetic_platform.generation.poster import PosterRenderer
from aesthetic_platform.generation.sizes import size_for_ratio
from aesthetic_platform.schemas import RATIOS

MODEL_SEED = 1234
POSTER_PIXELS = 160 * 160
POSTER_PROMPT = "国潮风格的月饼礼盒海报，红色与金色，居中构图"


def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


def posters(pixel_budget: int = POSTER_PIXELS) -> dict[str, Image.Image]:
    requests = [
        GenerationRequest(POSTER_PROMPT, seed, *size_for_ratio(ratio, pixel_budget))
        for seed, ratio in enumerate(RATIOS)
    ]
    return dict(zip(RATIOS, PosterRenderer().generate(requests), strict=True))


@pytest.fixture(scope="session")
def sample_images() -> dict[str, Image.Image]:
    photo = astronaut()
    images = {"astronaut": photo, "astronaut_wide_odd": photo.crop((0, 100, 509, 330))}
    images.update({f"poster_{ratio}": poster for ratio, poster in posters().items()})
    return images


def build_tiny_model(**overrides):
    from aesthetic_platform.model import AestheticScorer, named_config

    torch.manual_seed(MODEL_SEED)
    return AestheticScorer(named_config("tiny", **overrides))


@pytest.fixture(scope="session")
def tiny_model():
    """Eval-mode tiny model shared by read-only tests (never trained or mutated)."""
    return build_tiny_model().eval()


def image_batch(model, images):
    """Paths/PIL images of any size -> one padded batch for ``model`` (aspect kept, no crop)."""
    from aesthetic_platform.model.batching import collate_images, prepare_image

    tensors = [prepare_image(image, model.preprocess, model.config.image.patch_budget) for image in images]
    return collate_images(tensors, model.preprocess.patch_size)
