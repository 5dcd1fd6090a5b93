"""Pair planning: same-ratio pairs among a (prompt, ratio)'s seeds, cross-ratio pairs within a seed family, nothing else."""

import datetime as dt
import itertools

from aesthetic_platform.generation import CandidateConfig, plan_candidates
from aesthetic_platform.judging.pairs import plan_pairs
from aesthetic_platform.prompts import PromptBatchConfig, build_prompt_batch
from aesthetic_platform.schemas import CandidateImage


def _manifest(batch: str, prompts, config: CandidateConfig, seed_families: bool = True) -> list[CandidateImage]:
    """Manifest rows for a plan without rendering (distinct fake hashes: every image differs)."""
    rows = []
    for i, planned in enumerate(plan_candidates(batch, prompts, config, seed_families)):
        rows.append(CandidateImage(
            image_id=f"i{i:04d}", prompt_id=planned.prompt.prompt_id, batch=batch, seed=planned.seed, ratio=planned.ratio,
            width=planned.width, height=planned.height, seed_family=planned.seed_family, split_position=planned.split_position,
            generator="test", params_json="{}", path=f"/x/{i}.png", sha256=f"{i:064d}", created_at=dt.datetime.now(dt.UTC),
        ))
    return rows


def test_pairs_compare_seeds_at_one_ratio_or_one_seed_at_two_ratios():
    prompts = build_prompt_batch("b1", PromptBatchConfig(count=4))
    manifest = _manifest("b1", prompts, CandidateConfig(per_prompt=3, ratios_per_prompt=2))
    pairs = plan_pairs(prompts, manifest)
    kinds = [p.kind for p in pairs]
    assert kinds.count("same_ratio") == 4 * 2 * 3  # C(3, 2) seeds at each of 2 ratios
    assert kinds.count("cross_ratio") == 4 * 3  # each of 3 seed families at its 2 ratios
    for pair in pairs:
        assert pair.a.prompt_id == pair.b.prompt_id == pair.prompt.prompt_id
        if pair.kind == "same_ratio":
            assert pair.a.ratio == pair.b.ratio and pair.a.seed != pair.b.seed
        else:
            assert pair.a.ratio != pair.b.ratio and pair.a.seed == pair.b.seed and pair.a.seed_family == pair.b.seed_family
    # two different seeds at two different ratios are never compared
    planned = {frozenset((p.a.image_id, p.b.image_id)) for p in pairs}
    for a, b in itertools.combinations(manifest, 2):
        if a.prompt_id == b.prompt_id and a.ratio != b.ratio and a.seed != b.seed:
            assert frozenset((a.image_id, b.image_id)) not in planned


def test_three_ratios_give_every_ratio_pair_of_a_family_and_no_families_give_no_cross_pairs():
    prompts = build_prompt_batch("b2", PromptBatchConfig(count=2))
    three = plan_pairs(prompts, _manifest("b2", prompts, CandidateConfig(per_prompt=2, ratios_per_prompt=3)))
    assert sum(p.kind == "cross_ratio" for p in three) == 2 * 2 * 3  # 2 families x C(3, 2) ratio pairs per prompt
    apart = plan_pairs(prompts, _manifest("b2", prompts, CandidateConfig(per_prompt=2, ratios_per_prompt=3), seed_families=False))
    assert {p.kind for p in apart} == {"same_ratio"} and len(apart) == 2 * 3


def test_byte_identical_images_are_never_paired():
    prompts = build_prompt_batch("b3", PromptBatchConfig(count=1))
    manifest = _manifest("b3", prompts, CandidateConfig(per_prompt=2, ratios_per_prompt=2))
    twin = manifest[2].model_copy(update={"sha256": manifest[0].sha256})  # seed 0 at the second ratio, same bytes as at the first
    pairs = plan_pairs(prompts, [manifest[0], manifest[1], twin, manifest[3]])
    assert frozenset((manifest[0].image_id, twin.image_id)) not in {frozenset((p.a.image_id, p.b.image_id)) for p in pairs}
    assert len(pairs) == 2 + 1


def test_the_demo_design_gives_every_split_same_ratio_pairs_at_every_ratio_and_cross_ratio_pairs():
    """The demo's own batches, candidate design and split, planned without rendering or judging."""
    from aesthetic_platform.jobs.cli import DEMO_BATCHES, DEMO_PROMPTS, DEMO_RATIOS, DEMO_SEEDS, _demo_split, demo_batches
    from aesthetic_platform.judging.pairs import split_for
    from aesthetic_platform.schemas import RATIOS

    split = _demo_split()["preference_pairs"]
    config = CandidateConfig(per_prompt=DEMO_SEEDS, ratios_per_prompt=DEMO_RATIOS)
    kinds: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for batch in demo_batches("demo-0001", DEMO_BATCHES):
        prompts = build_prompt_batch(batch, PromptBatchConfig(count=DEMO_PROMPTS))
        for pair in plan_pairs(prompts, _manifest(batch, prompts, config)):
            part = split_for(pair.prompt.text_hash, split.fractions, split.split_salt)
            kinds[part].add(f"same_ratio {pair.a.ratio}" if pair.kind == "same_ratio" else "cross_ratio")
    expected = {f"same_ratio {r}" for r in RATIOS} | {"cross_ratio"}
    assert kinds == {"train": expected, "val": expected, "test": expected}
