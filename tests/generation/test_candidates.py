import polars as pl

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.generation import CandidateConfig, PosterRenderer, generate_candidates, plan_candidates
from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch
from aesthetic_platform.schemas import CANDIDATE_IMAGES, RATIOS

CONFIG = CandidateConfig(per_prompt=4, pixel_budget=64 * 64)


class CountingRenderer(PosterRenderer):
    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return super().generate(requests)


def test_plan_has_distinct_seeds_and_every_ratio():
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    plan = plan_candidates("b1", prompts, CONFIG)
    assert len(plan) == 12
    for prompt in prompts:
        seeds = [p.seed for p in plan if p.prompt.prompt_id == prompt.prompt_id]
        assert len(set(seeds)) == 4
    assert {p.ratio for p in plan} == set(RATIOS)
    assert plan == plan_candidates("b1", prompts, CONFIG)


def test_manifest_rows_and_reuse(data_root):
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    renderer = CountingRenderer()
    first = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (first.generated, first.reused, renderer.calls) == (12, 0, 12)
    manifest = pl.read_parquet(data_root.table("candidate_images", "b1"))
    assert manifest.columns == CANDIDATE_IMAGES.columns
    for row in first.rows:
        assert sha256_file(row.path) == row.sha256
        assert row.path.endswith(f"b1/{row.prompt_id}/{row.seed}_{row.width}x{row.height}.png")
        assert row.generator == "poster-renderer/v1"

    second = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (second.generated, second.reused, renderer.calls) == (0, 12, 12)
    assert [r.created_at for r in second.rows] == [r.created_at for r in first.rows]

    # a damaged file is re-rendered, byte-identical to the original
    damaged = first.rows[5]
    original = open(damaged.path, "rb").read()
    with open(damaged.path, "wb") as handle:
        handle.write(b"garbage")
    third = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (third.generated, renderer.calls) == (1, 13)
    assert open(damaged.path, "rb").read() == original


def test_new_parameters_do_not_reuse(data_root):
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=2))
    generate_candidates(data_root, "b1", prompts, CONFIG, PosterRenderer())
    bigger = CandidateConfig(per_prompt=4, pixel_budget=96 * 96)
    run = generate_candidates(data_root, "b1", prompts, bigger, PosterRenderer())
    assert run.generated == 8
