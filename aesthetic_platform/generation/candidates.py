"""K candidate images per (prompt, ratio), written once and reused by content hash.

A candidate's identity is (batch, prompt, seed, size, generator, parameters). Its
seed is derived from the batch, prompt and candidate index, so re-materializing or
backfilling a batch plans exactly the same candidates and only renders the ones whose
PNG is missing or no longer matches the hash in the manifest.

The plan is a design of comparisons: K seeds at each of a prompt's ratios give
same-ratio pairs (pick the best of K at one size); one seed rendered at two ratios (a
seed family) gives cross-ratio pairs. Ratios rotate over the prompts in the order of
their split position, so train, val and test all see every ratio about equally often.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aesthetic_platform.atomic import held_exclusively, sha256_bytes, sha256_file, write_bytes
from aesthetic_platform.generation.base import GenerationRequest, ImageGenerator, params_json
from aesthetic_platform.generation.sizes import RatioMode, assign_ratios, ratio_cycle, size_for_ratio
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import CANDIDATE_IMAGES, RATIOS, CandidateImage, PromptSpec
from aesthetic_platform.splits import split_position
from aesthetic_platform.tables import SchemaError

ProgressFn = Callable[[int, int], None]
log = logging.getLogger(__name__)


class CandidateConfig(BaseModel):
    """The design of the comparisons: which ratios each prompt gets, how many seeds at each, which seeds are shared.

    Every prompt gets ``ratios_per_prompt`` ratios and ``per_prompt`` seeds at each of
    them, so each (prompt, ratio) holds K candidates of one size (same-ratio pairs,
    best-of-N). With ``seed_families`` and a generator that keeps a seed's design at
    every size (the poster renderer), the K seeds are the same at each of the prompt's
    ratios: one design rendered at two ratios makes a cross-ratio pair.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_prompt: int = Field(
        default=4, ge=1, le=64,
        description="K seeds per (prompt, ratio): the same-ratio candidates the judge compares (best-of-K).",
    )
    ratios_per_prompt: int = Field(
        default=2, ge=1, le=len(RATIOS), description="How many of `ratios` each prompt is rendered at (K candidates at each)."
    )
    seed_families: bool = Field(
        default=True,
        description="Render each seed at every ratio of its prompt (one design at several ratios: cross-ratio pairs), "
        "where the generator keeps a seed's design across sizes; otherwise every (ratio, seed) gets its own seed.",
    )
    ratio_mode: RatioMode = Field(
        default="balanced",
        description="'balanced': ratio subsets rotate over the prompts in split-position order, so every prompt, split and "
        "batch gets every ratio about equally often; 'random': each prompt draws its ratios independently.",
    )
    ratios: list[str] = Field(default=list(RATIOS), min_length=1, description="The aspect ratios to draw from.")
    pixel_budget: int = Field(default=256 * 256, ge=256, description="Pixels per image; sides are multiples of 16.")
    chunk_size: int = Field(default=16, ge=1, description="Images handed to the generator per call.")

    @model_validator(mode="after")
    def _enough_ratios(self) -> CandidateConfig:
        ratio_cycle(self.ratios, self.ratios_per_prompt)
        return self

    @property
    def images_per_prompt(self) -> int:
        return self.per_prompt * self.ratios_per_prompt


@dataclass(frozen=True)
class PlannedCandidate:
    prompt: PromptSpec
    seed: int
    ratio: str
    width: int
    height: int
    seed_family: int = 0
    split_position: float = 0.0


def candidate_seed(batch: str, prompt_id: str, index: int) -> int:
    digest = hashlib.sha256(f"seed:{batch}:{prompt_id}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


def keeps_design_across_sizes(generator: ImageGenerator) -> bool:
    """Whether one seed draws the same design at every size (generators say so with ``seed_families = True``)."""
    return bool(getattr(generator, "seed_families", False))


def _distinct_seeds(batch: str, prompt_id: str, count: int) -> list[int]:
    seeds: list[int] = []
    index = 0
    while len(seeds) < count:
        seed = candidate_seed(batch, prompt_id, index)
        index += 1
        if seed not in seeds:
            seeds.append(seed)
    return seeds


def plan_candidates(
    batch: str, prompts: list[PromptSpec], config: CandidateConfig, seed_families: bool = True
) -> list[PlannedCandidate]:
    """K seeds at each of a prompt's ratios; ratios stratified by the prompts' split positions.

    With ``seed_families`` (and ``config.seed_families``) seed k is the same at each of the
    prompt's ratios and ``seed_family`` is k; otherwise every candidate has its own seed
    and family.
    """
    families = seed_families and config.seed_families
    positions = [split_position(p.text_hash) for p in prompts]
    ratio_sets = assign_ratios(positions, config.ratio_mode, config.ratios, config.ratios_per_prompt, random.Random(f"ratios:{batch}"))
    plan: list[PlannedCandidate] = []
    for prompt, position, ratios in zip(prompts, positions, ratio_sets, strict=True):
        count = config.per_prompt if families else config.per_prompt * len(ratios)
        seeds = _distinct_seeds(batch, prompt.prompt_id, count)
        for r_index, ratio in enumerate(ratios):
            width, height = size_for_ratio(ratio, config.pixel_budget)
            for k in range(config.per_prompt):
                family = k if families else r_index * config.per_prompt + k
                plan.append(PlannedCandidate(prompt, seeds[family], ratio, width, height, family, position))
    return plan


def _image_id(batch: str, planned: PlannedCandidate, generator: str, params: str) -> str:
    # the ratio label is part of the identity: at a small pixel budget two ratios can round to one size
    key = f"{batch}|{planned.prompt.prompt_id}|{planned.seed}|{planned.ratio}|{planned.width}x{planned.height}|{generator}|{params}"
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
    return CANDIDATE_IMAGES.rows(CANDIDATE_IMAGES.read(path), root) if path.exists() else []


def _previous_manifest(root: DataRoot, batch: str) -> list[CandidateImage]:
    """The batch's manifest for reuse; one written before the current schema is re-rendered, not reused."""
    try:
        return load_manifest(root, batch)
    except SchemaError:
        return []


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
    """Render what is missing, reuse what is intact, write the batch manifest atomically.

    One process renders a batch at a time: a second (overlapping backfills) waits for the first, then
    reuses its images instead of rendering them again."""
    if not prompts:
        raise ValueError(f"batch {batch!r} has no prompts to render")
    waiting = f"batch {batch!r} is being rendered by another process: waiting for it, then its images are reused"
    with held_exclusively(root.batch_lock("candidate_images", batch), on_wait=lambda: log.warning(waiting)):
        return _render_batch(root, batch, prompts, config, generator, progress)


def _render_batch(
    root: DataRoot, batch: str, prompts: list[PromptSpec], config: CandidateConfig, generator: ImageGenerator,
    progress: ProgressFn | None,
) -> CandidateRun:
    plan = plan_candidates(batch, prompts, config, keeps_design_across_sizes(generator))
    gen_params = params_json(generator.params)
    previous = {row.image_id: row for row in _previous_manifest(root, batch)}
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
                seed_family=planned.seed_family, split_position=planned.split_position,
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
