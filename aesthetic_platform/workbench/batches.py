"""Settings and batch rendering: one prompt, several seeds, the platform's generators.

A batch's PNGs land under ``workbench/images/<prompt_id>/<generator key>/<seed>_<w>x<h>.png``.
The generator key (a hash of the generator name and every pixel-changing
parameter) keeps two settings that would draw the same prompt/seed/size
differently from overwriting each other's files, so a stored selection always
points at the image the person actually saw.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import re
from dataclasses import dataclass
from typing import Any

from PIL import Image
from pydantic import Field

from aesthetic_platform.atomic import write_bytes
from aesthetic_platform.generation import (
    GenerationRequest,
    GeneratorConfig,
    ImageGenerator,
    PosterRenderer,
    build_generator,
    params_json,
    size_for_ratio,
)
from aesthetic_platform.generation.poster import RENDERER_NAME
from aesthetic_platform.paths import DataRoot, check_key
from aesthetic_platform.schemas import PromptSpec, RatioLabel
from aesthetic_platform.workbench.assist import AssistScorer
from aesthetic_platform.workbench.selections import JudgedImage, images_dir, new_id, utc_now

DEFAULT_SEEDS_PER_BATCH = 8
MAX_SEEDS_PER_BATCH = 16
MIN_SEEDS_PER_BATCH = 2  # one image leaves nothing to compare
DEFAULT_PIXEL_BUDGET = 256 * 256
MIN_PIXEL_BUDGET = 16 * 16
MAX_PIXEL_BUDGET = 2048 * 2048
SEED_SPACE = 2**32
GENERATOR_KEY_HEX = 12
_SNAPSHOT = re.compile(r"snapshots/([0-9a-f]{7,40})")


class WorkbenchSettings(GeneratorConfig):
    """The settings tab: the generator (``GeneratorConfig``), plus size, seeds per batch and the assist score.

    A batch is the set of images a person judges together; ``batch_size`` stays the generator's own
    knob (images per pipeline call), so a batch of 8 seeds renders in chunks of it.
    """

    ratio: RatioLabel = "1:1"
    pixel_budget: int = Field(default=DEFAULT_PIXEL_BUDGET, ge=MIN_PIXEL_BUDGET, le=MAX_PIXEL_BUDGET)
    seeds_per_batch: int = Field(
        default=DEFAULT_SEEDS_PER_BATCH, ge=MIN_SEEDS_PER_BATCH, le=MAX_SEEDS_PER_BATCH,
        description="images (seeds) shown and judged together",
    )
    assist: bool = Field(default=True, description="compute the assist score when a registered scorer exists")

    def size(self) -> tuple[int, int]:
        return size_for_ratio(self.ratio, self.pixel_budget)


def build_workbench_generator(settings: WorkbenchSettings) -> ImageGenerator:
    """The platform generator the settings name; a diffusers pipeline is loaded now, so errors show at Initialise."""
    return build_generator(settings, load=True)


def sampling_params(generator: ImageGenerator) -> tuple[int | None, float | None, str | None]:
    """(steps, guidance, scheduler) the generator really uses; None where it has no such knob."""
    params = generator.params
    steps, guidance, scheduler = params.get("steps"), params.get("guidance"), params.get("scheduler")
    return (
        int(steps) if steps is not None else None,
        float(guidance) if guidance is not None else None,
        str(scheduler) if scheduler is not None else None,
    )


def latent_geometry(generator: ImageGenerator) -> dict[str, Any]:
    """How the pipeline shapes its initial noise, so the analysis can regenerate it from the seed."""
    pipeline = getattr(generator, "pipeline", None)
    if pipeline is None:
        return {}
    scale = int(getattr(pipeline, "vae_scale_factor", 8))
    transformer, unet = getattr(pipeline, "transformer", None), getattr(pipeline, "unet", None)
    if transformer is not None and type(pipeline).__name__.startswith("Flux"):
        # FLUX packs 2x2 latent patches: in_channels counts packed channels
        return {"latent_channels": int(transformer.config.in_channels) // 4, "vae_scale_factor": scale, "latent_layout": "flux"}
    if unet is not None:
        return {"latent_channels": int(unet.config.in_channels), "vae_scale_factor": scale, "latent_layout": "unet"}
    return {}


def model_version(generator: ImageGenerator) -> str:
    """The weights' revision when known (hub snapshot hash), else 'local'; the renderer's own version."""
    if isinstance(generator, PosterRenderer):
        return RENDERER_NAME
    pipeline = getattr(generator, "pipeline", None)
    if pipeline is None:
        return "unloaded"
    import diffusers

    source = str(getattr(pipeline, "name_or_path", "") or "")
    match = _SNAPSHOT.search(source)
    return f"{match.group(1) if match else 'local'} (diffusers {diffusers.__version__})"


def generator_key(generator: ImageGenerator) -> str:
    return hashlib.sha256(f"{generator.name}|{params_json(generator.params)}".encode()).hexdigest()[:GENERATOR_KEY_HEX]


def draw_seeds(count: int) -> list[int]:
    """Fresh distinct seeds: golden-noise collection needs an unbiased sample of the seed space."""
    return random.SystemRandom().sample(range(SEED_SPACE), count)


def check_seeds(seeds: list[int]) -> list[int]:
    bad = [s for s in seeds if not 0 <= s < SEED_SPACE]
    if bad:
        raise ValueError(f"seeds must be in [0, 2**32): {bad}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct: {seeds}")
    if not MIN_SEEDS_PER_BATCH <= len(seeds) <= MAX_SEEDS_PER_BATCH:
        raise ValueError(f"a batch holds {MIN_SEEDS_PER_BATCH}-{MAX_SEEDS_PER_BATCH} seeds, got {len(seeds)}")
    return seeds


@dataclass(frozen=True)
class GeneratedBatch:
    """A rendered batch waiting for (or already given) a human judgement."""

    batch_id: str
    prompt: PromptSpec
    images: list[JudgedImage]
    settings: WorkbenchSettings
    generator: str
    model_version: str
    params: dict[str, Any]
    score_model: str | None
    generated_at: dt.datetime

    @property
    def seeds(self) -> list[int]:
        return [image.seed for image in self.images]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_batch(
    root: DataRoot,
    generator: ImageGenerator,
    settings: WorkbenchSettings,
    prompt: PromptSpec,
    seeds: list[int],
    scorer: AssistScorer | None,
) -> GeneratedBatch:
    """Render one image per seed, save each PNG atomically, score them when an assist scorer is on."""
    width, height = settings.size()
    pictures = generator.generate([GenerationRequest(prompt.text, seed, width, height) for seed in seeds])
    for picture in pictures:
        if picture.size != (width, height):
            raise RuntimeError(f"{generator.name} returned {picture.size} for a {width}x{height} request")
    scores: list[float | None] = [None] * len(seeds)
    if scorer is not None and settings.assist:
        scores = list(scorer.score(pictures, prompt.text))
        if len(scores) != len(seeds):
            raise RuntimeError(f"assist scorer {scorer.name} returned {len(scores)} scores for {len(seeds)} images")
    folder = images_dir(root) / check_key("prompt id", prompt.prompt_id) / generator_key(generator)
    images = [
        JudgedImage(
            seed=seed,
            path=str(write_bytes(folder / f"{seed}_{width}x{height}.png", _png(picture))),
            width=width,
            height=height,
            score=score,
        )
        for seed, picture, score in zip(seeds, pictures, scores, strict=True)
    ]
    steps, guidance, scheduler = sampling_params(generator)
    params = {
        **generator.params, **latent_geometry(generator),
        "generator": generator.name, "steps": steps, "guidance": guidance, "scheduler": scheduler,
        "ratio": settings.ratio, "width": width, "height": height,
    }
    return GeneratedBatch(
        batch_id=new_id(), prompt=prompt, images=images, settings=settings, generator=generator.name,
        model_version=model_version(generator), params=params,
        score_model=scorer.name if scorer is not None and settings.assist else None, generated_at=utc_now(),
    )
