"""K candidate images per prompt, written once and reused by content hash.

A candidate's identity is (batch, prompt, seed, size, generator, parameters). Its
seed is derived from the batch, prompt and candidate index, so re-materializing or
backfilling a batch plans exactly the same candidates and only renders the ones whose
PNG is missing or no longer matches the hash in the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from aesthetic_platform.atomic import sha256_bytes, sha256_file, write_bytes
from aesthetic_platform.generation.base import GenerationRequest, ImageGenerator, params_json
from aesthetic_platform.generation.sizes import RatioMode, assign_ratios, size_for_ratio
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import CANDIDATE_IMAGES, RATIOS, CandidateImage, PromptSpec

ProgressFn = Callable[[int, int], None]


class CandidateConfig(BaseModel):
    """How many candidates each prompt gets, at which ratios and sizes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_prompt: int = Field(
        default=4, ge=2, le=64, description="K candidates per prompt, each with its own seed (pairs are judged among them)."
    )
    ratio_mode: RatioMode = Field(
        default="all", description="'all': cycle all five ratios; 'fixed': cycle `ratios`; 'random': draw from `ratios`."
    )
    ratios: list[str] = Field(default=list(RATIOS), min_length=1, description="Aspect ratios for 'fixed' and 'random'.")
    pixel_budget: int = Field(default=256 * 256, ge=256, description="Pixels per image; sides are multiples of 16.")
    chunk_size: int = Field(default=16, ge=1, description="Images handed to the generator per call.")


@dataclass(frozen=True)
class PlannedCandidate:
    prompt: PromptSpec
    seed: int
    ratio: str
    width: int
    height: int


def candidate_seed(batch: str, prompt_id: str, index: int) -> int:
    digest = hashlib.sha256(f"seed:{batch}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def plan_candidates(batch: str, prompts: list[PromptSpec], config: CandidateConfig) -> list[PlannedCandidate]:
    """Distinct seeds per prompt; ratios spread over the whole batch so every ratio appears."""
    rng = random.Random(f"ratios:{batch}")
    ratios = assign_ratios(len(prompts) * config.per_prompt, config.ratio_mode, config.ratios, rng)
    plan: list[PlannedCandidate] = []
    for p_index, prompt in enumerate(prompts):
        seeds: list[int] = []
        index = 0
        while len(seeds) < config.per_prompt:
            seed = candidate_seed(batch, prompt.prompt_id, index)
            index += 1
            if seed not in seeds:
                seeds.append(seed)
        for k, seed in enumerate(seeds):
            ratio = ratios[p_index * config.per_prompt + k]
            width, height = size_for_ratio(ratio, config.pixel_budget)
            plan.append(PlannedCandidate(prompt, seed, ratio, width, height))
    return plan


def _image_id(batch: str, planned: PlannedCandidate, generator: str, params: str) -> str:
    key = f"{batch}|{planned.prompt.prompt_id}|{planned.seed}|{planned.width}x{planned.height}|{generator}|{params}"
    return "i" + hashlib.sha256(key.encode()).hexdigest()[:15]


def _reusable(previous: CandidateImage | None) -> bool:
    if previous is None:
        return False
    try:
        return sha256_file(previous.path) == previous.sha256
    except FileNotFoundError:
        return False


def load_manifest(root: DataRoot, batch: str) -> list[CandidateImage]:
    path = root.table("candidate_images", batch)
    return CANDIDATE_IMAGES.rows(CANDIDATE_IMAGES.read(path)) if path.exists() else []


@dataclass(frozen=True)
class CandidateRun:
    rows: list[CandidateImage]
    generated: int
    reused: int


def generate_candidates(
    root: DataRoot,
    batch: str,
    prompts: list[PromptSpec],
    config: CandidateConfig,
    generator: ImageGenerator,
    progress: ProgressFn | None = None,
) -> CandidateRun:
    """Render what is missing, reuse what is intact, write the batch manifest atomically."""
    if not prompts:
        raise ValueError(f"batch {batch!r} has no prompts to render")
    plan = plan_candidates(batch, prompts, config)
    gen_params = params_json(generator.params)
    previous = {row.image_id: row for row in load_manifest(root, batch)}
    rows: dict[int, CandidateImage] = {}
    todo: list[tuple[int, PlannedCandidate, str]] = []
    for index, planned in enumerate(plan):
        image_id = _image_id(batch, planned, generator.name, gen_params)
        if _reusable(previous.get(image_id)):
            rows[index] = previous[image_id]
        else:
            todo.append((index, planned, image_id))
    reused = len(rows)
    if progress:
        progress(reused, len(plan))
    for start in range(0, len(todo), config.chunk_size):
        chunk = todo[start : start + config.chunk_size]
        images = generator.generate([GenerationRequest(p.prompt.text, p.seed, p.width, p.height) for _, p, _ in chunk])
        for (index, planned, image_id), image in zip(chunk, images, strict=True):
            if image.size != (planned.width, planned.height):
                raise RuntimeError(f"{generator.name} returned {image.size} for a {planned.width}x{planned.height} request")
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
            path = write_bytes(root.candidate_image(batch, planned.prompt.prompt_id, planned.seed, planned.width, planned.height), data)
            rows[index] = CandidateImage(
                image_id=image_id, prompt_id=planned.prompt.prompt_id, batch=batch, seed=planned.seed,
                ratio=planned.ratio, width=planned.width, height=planned.height,  # type: ignore[arg-type]
                generator=generator.name, steps=generator.params.get("steps"),
                guidance=generator.params.get("guidance"), scheduler=generator.params.get("scheduler"),
                params_json=gen_params, path=str(path), sha256=sha256_bytes(data),
                created_at=dt.datetime.now(dt.UTC),
            )
        if progress:
            progress(len(rows), len(plan))
    ordered = [rows[i] for i in range(len(plan))]
    CANDIDATE_IMAGES.write(ordered, root.table("candidate_images", batch))
    return CandidateRun(ordered, generated=len(plan) - reused, reused=reused)
