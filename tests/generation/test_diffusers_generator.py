"""DiffusersGenerator on a tiny random-init FLUX pipeline assembled offline."""

import numpy as np
import pytest

from aesthetic_platform.generation import CandidateConfig, DiffusersGenerator, GenerationRequest, generate_candidates
from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch
from tests.fixtures.tiny_diffusers import tiny_flux_pipeline


@pytest.fixture(scope="module")
def generator():
    return DiffusersGenerator.from_pipeline(tiny_flux_pipeline(), "tiny-flux", max_sequence_length=32, batch_size=4)


def pixels(image):
    return np.asarray(image, dtype=np.int16)


def test_same_seed_same_pixels(generator):
    request = GenerationRequest("a red poster of a cat", 42, 64, 64)
    a, b = generator.generate([request])[0], generator.generate([request])[0]
    assert np.array_equal(pixels(a), pixels(b))


def test_different_seeds_differ(generator):
    a, b = generator.generate([GenerationRequest("a red poster", 1, 64, 64), GenerationRequest("a red poster", 2, 64, 64)])
    assert np.abs(pixels(a) - pixels(b)).mean() > 1.0


def test_each_image_depends_on_its_own_seed_only(generator):
    alone = generator.generate([GenerationRequest("a blue poster", 7, 64, 64)])[0]
    batch = generator.generate([GenerationRequest("a blue poster", s, 64, 64) for s in (3, 7, 9)])
    assert np.abs(pixels(alone) - pixels(batch[1])).max() <= 2  # batched matmuls may round differently


def test_non_square_sizes_in_one_call(generator):
    sizes = [(96, 48), (48, 96), (64, 64), (80, 48)]
    images = generator.generate([GenerationRequest("a poster of a car", i, w, h) for i, (w, h) in enumerate(sizes)])
    assert [im.size for im in images] == sizes


def test_params_are_recorded_in_the_manifest(generator, data_root):
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    run = generate_candidates(data_root, "b1", prompts, CandidateConfig(per_prompt=2, pixel_budget=48 * 48), generator)
    row = run.rows[0]
    assert row.generator == "diffusers/tiny-flux"
    assert (row.steps, row.guidance, row.scheduler) == (4, 0.0, "FlowMatchEulerDiscreteScheduler")
    assert {r.ratio for r in run.rows} == {"1:1", "3:4", "9:16", "4:3", "16:9"}
    # a diffusion model lays each size out anew: no seed families, every candidate has its own seed
    assert len(run.rows) == 12 and len({r.seed for r in run.rows}) == 12
