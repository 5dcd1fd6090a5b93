from collections import Counter

import polars as pl
import pytest
from pydantic import ValidationError

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.generation import CandidateConfig, PosterRenderer, generate_candidates, plan_candidates
from aesthetic_platform.judging.pairs import split_for
from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch
from aesthetic_platform.schemas import CANDIDATE_IMAGES, RATIOS

CONFIG = CandidateConfig(per_prompt=2, ratios_per_prompt=2, pixel_budget=64 * 64)


class CountingRenderer(PosterRenderer):
    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return super().generate(requests)


def test_plan_has_k_seeds_per_prompt_and_ratio_as_seed_families():
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    config = CandidateConfig(per_prompt=3, ratios_per_prompt=2)
    plan = plan_candidates("b1", prompts, config)
    assert len(plan) == 3 * 2 * 3 == 3 * config.images_per_prompt
    for prompt in prompts:
        mine = [p for p in plan if p.prompt.prompt_id == prompt.prompt_id]
        ratios = sorted({p.ratio for p in mine})
        assert len(ratios) == 2
        by_ratio = {r: sorted(p.seed for p in mine if p.ratio == r) for r in ratios}
        assert all(len(set(seeds)) == 3 for seeds in by_ratio.values())
        assert by_ratio[ratios[0]] == by_ratio[ratios[1]]  # the same three seeds at both ratios: three seed families
        assert {(p.seed, p.seed_family) for p in mine} == {(s, k) for k, s in enumerate(sorted({p.seed for p in mine}, key=[
            q.seed for q in mine if q.ratio == mine[0].ratio].index))}
    assert {p.ratio for p in plan} == set(RATIOS)
    assert plan == plan_candidates("b1", prompts, config)


def test_without_seed_families_every_candidate_has_its_own_seed():
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=2))
    for plan in (plan_candidates("b1", prompts, CandidateConfig(per_prompt=3, seed_families=False)),
                 plan_candidates("b1", prompts, CandidateConfig(per_prompt=3), seed_families=False)):
        for prompt in prompts:
            seeds = [p.seed for p in plan if p.prompt.prompt_id == prompt.prompt_id]
            assert len(seeds) == len(set(seeds)) == 6


@pytest.mark.parametrize("ratios_per_prompt", [1, 2, 3])
def test_ratios_are_balanced_per_prompt_and_per_split(ratios_per_prompt):
    """Each prompt has K candidates at each of its ratios; within every split each ratio gets an even share."""
    config = CandidateConfig(per_prompt=2, ratios_per_prompt=ratios_per_prompt)
    prompts = build_prompt_batch("balance", PromptBatchConfig(count=60))
    plan = plan_candidates("balance", prompts, config)
    per_prompt = Counter((p.prompt.prompt_id, p.ratio) for p in plan)
    assert set(per_prompt.values()) == {2} and len(per_prompt) == 60 * ratios_per_prompt
    for fractions in ((0.8, 0.1, 0.1), (0.7, 0.1, 0.2), (0.5, 0.25, 0.25)):  # whatever the fractions, with the default salt
        slots: dict[str, Counter] = {}
        for prompt_id, ratio in per_prompt:
            prompt = next(q for q in prompts if q.prompt_id == prompt_id)
            slots.setdefault(split_for(prompt.text_hash, fractions, "aesthetic-split-v1"), Counter())[ratio] += 1
        for split, counts in slots.items():
            total = sum(counts.values())
            if total >= len(RATIOS):
                assert set(counts) == set(RATIOS), (fractions, split, counts)
            assert max(counts.values()) - min(counts.get(r, 0) for r in RATIOS) <= 2, (fractions, split, counts)


def test_random_ratios_and_config_errors():
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=20))
    plan = plan_candidates("b1", prompts, CandidateConfig(per_prompt=2, ratio_mode="random", ratios=["3:4", "4:3", "1:1"]))
    assert {p.ratio for p in plan} <= {"3:4", "4:3", "1:1"}
    assert set(Counter((p.prompt.prompt_id, p.ratio) for p in plan).values()) == {2}
    with pytest.raises(ValidationError, match="ratios_per_prompt must be between 1 and 1"):
        CandidateConfig(ratios=["1:1"], ratios_per_prompt=2)
    with pytest.raises(ValidationError, match="subset"):
        CandidateConfig(ratios=["5:4"], ratios_per_prompt=1)


def test_manifest_rows_and_reuse(data_root):
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    renderer = CountingRenderer()
    first = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (first.generated, first.reused, renderer.calls) == (12, 0, 12)
    manifest = pl.read_parquet(data_root.table("candidate_images", "b1"))
    assert manifest.columns == CANDIDATE_IMAGES.columns
    # the design is recorded: seed families (one seed at both of a prompt's ratios) and the stratification key
    families = manifest.group_by("prompt_id", "seed_family").agg(pl.col("seed").n_unique(), pl.col("ratio").n_unique())
    assert families.height == 6 and set(families["seed"]) == {1} and set(families["ratio"]) == {2}
    assert manifest.group_by("prompt_id").agg(pl.col("split_position").n_unique())["split_position"].to_list() == [1, 1, 1]
    for row in first.rows:
        assert sha256_file(row.path) == row.sha256
        assert row.path.endswith(f"b1/{row.prompt_id}/{row.seed}_{row.width}x{row.height}.png")
        assert row.generator == "poster-renderer/v1"

    second = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (second.generated, second.reused, renderer.calls) == (0, 12, 12)
    assert [r.created_at for r in second.rows] == [r.created_at for r in first.rows]

    # a damaged file is re-rendered, byte-identical to the original
    damaged = next(r for r in first.rows[5:] if [x.path for x in first.rows].count(r.path) == 1)  # 3:4 and 9:16 share 48x80 here
    original = open(damaged.path, "rb").read()
    with open(damaged.path, "wb") as handle:
        handle.write(b"garbage")
    third = generate_candidates(data_root, "b1", prompts, CONFIG, renderer)
    assert (third.generated, renderer.calls) == (1, 13)
    assert open(damaged.path, "rb").read() == original


def test_new_parameters_do_not_reuse(data_root):
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=2))
    generate_candidates(data_root, "b1", prompts, CONFIG, PosterRenderer())
    bigger = CONFIG.model_copy(update={"pixel_budget": 96 * 96})
    run = generate_candidates(data_root, "b1", prompts, bigger, PosterRenderer())
    assert run.generated == 8


def test_two_runs_rendering_one_batch_at_once_render_each_image_once(data_root):
    """Overlapping backfills: the second waits for the first and reuses its images instead of rendering them again."""
    import threading
    import time

    class SlowCountingRenderer(CountingRenderer):
        lock = threading.Lock()

        def generate(self, requests):
            with self.lock:
                self.calls += len(requests)
            time.sleep(0.05)  # long enough for the runs to overlap
            return PosterRenderer.generate(self, requests)

    prompts = build_prompt_batch("b1", PromptBatchConfig(count=3))
    renderer = SlowCountingRenderer()
    runs: list = []
    threads = [threading.Thread(target=lambda: runs.append(generate_candidates(data_root, "b1", prompts, CONFIG, renderer)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(runs) == 2 and renderer.calls == 12  # not 24
    assert sorted((run.generated, run.reused) for run in runs) == [(0, 12), (12, 0)]
    assert data_root.batch_tables("candidate_images") == [data_root.table("candidate_images", "b1")]
