"""Best-of-N on constructed groups whose answer is known."""

import itertools

import numpy as np

from aesthetic_platform.evaluation.best_of_n import best_of_n, same_ratio_groups
from aesthetic_platform.schemas import DimScores, PreferencePair

DIMS = ("total", "color")


def _pairs(prompt: str, ratio: str, judge: dict[str, float], color: dict[str, float] | None = None, drop: int | None = None):
    """Every pair of the candidates in ``judge`` (image -> teacher total), winner first; ``drop`` leaves one pair out."""
    color = color or judge
    rows = []
    for k, (a, b) in enumerate(itertools.combinations(sorted(judge), 2)):
        if k == drop:
            continue
        w, l = (a, b) if judge[a] > judge[b] else (b, a)
        rows.append(PreferencePair(
            pair_id=f"{prompt}-{w}-{l}", batch="b", prompt_id=prompt, prompt=prompt, prompt_hash=f"h-{prompt}", winner_id=w, loser_id=l,
            image_winner_path=f"/{w}.png", image_loser_path=f"/{l}.png", winner_ratio=ratio, loser_ratio=ratio,
            scores={"total": DimScores(winner=judge[w], loser=judge[l]), "color": DimScores(winner=color[w], loser=color[l])},
            judge_model="m", judge_prompt_version="v", consistent=True, split="test",
        ))
    return rows


def _logits(pairs, student: dict[str, float]):
    """[pairs, dims] student logits from one logit per image (the same for every dimension)."""
    winners = np.array([[student[p.winner_id]] * len(DIMS) for p in pairs])
    losers = np.array([[student[p.loser_id]] * len(DIMS) for p in pairs])
    return winners, losers


def test_known_answer_hits_misses_and_left_out_groups():
    pairs = (
        _pairs("A", "1:1", {"a1": 8.0, "a2": 6.0, "a3": 4.0})  # judge picks a1; so does the student: hit
        + _pairs("B", "4:3", {"b1": 7.0, "b2": 5.0, "b3": 3.0})  # judge picks b1; the student picks b2: miss
        + _pairs("C", "16:9", {"c1": 9.0, "c2": 2.0, "c3": 1.0}, drop=0)  # a pair missing: not a full round robin
        + _pairs("D", "1:1", {"d1": 6.0, "d2": 5.0}, color={"d1": 5.0, "d2": 5.0})  # N = 2; no decisive color winner
    )
    cross = _pairs("A", "1:1", {"a1": 8.0, "x": 1.0})[0].model_copy(update={"loser_ratio": "16:9"})
    pairs.append(PreferencePair.model_validate({**cross.model_dump(), "pair_kind": None, "ratio_pair": None}))
    assert pairs[-1].pair_kind == "cross_ratio"  # never part of a group
    student = {"a1": 3.0, "a2": 1.0, "a3": 0.0, "b1": 1.0, "b2": 2.0, "b3": 0.0, "c1": 0.0, "c2": 1.0, "c3": 2.0,
               "d1": 1.0, "d2": 0.0, "x": 9.0}
    groups, incomplete = same_ratio_groups(pairs)
    assert sorted(len(g.images) for g in groups) == [2, 3, 3] and incomplete == 1
    result = best_of_n(pairs, *_logits(pairs, student), DIMS, tie_threshold=0.0, samples=200)
    total = result["total"]
    assert total.hit.n == 3 and total.hit.accuracy == 2 / 3  # A and D hit, B misses
    assert abs(total.chance - (1 / 3 + 1 / 3 + 1 / 2) / 3) < 1e-12 and total.mean_n == 8 / 3 and total.skipped == 0
    color = result["color"]  # D's two candidates tie on color: the judge has no top pick there
    assert color.hit.n == 2 and color.skipped == 1 and color.hit.accuracy == 0.5
    # the tie threshold counts: at 1.5 D's gap (1.0) is a tie; at 2.5 so are A's and B's top gaps (2.0)
    middle = best_of_n(pairs, *_logits(pairs, student), DIMS, tie_threshold=1.5, samples=200)["total"]
    assert (middle.hit.n, middle.hit.accuracy, middle.skipped) == (2, 0.5, 1)
    wide = best_of_n(pairs, *_logits(pairs, student), DIMS, tie_threshold=2.5, samples=200)["total"]
    assert wide.hit.n == 0 and wide.skipped == 3 and not wide.beats_chance


def test_a_student_that_always_agrees_beats_random_choice_with_a_ci():
    rng = np.random.default_rng(0)
    pairs, student, flipped = [], {}, {}
    for g in range(40):
        judge = {f"g{g}-{k}": float(v) for k, v in enumerate(rng.permutation(4) + 1)}
        pairs += _pairs(f"P{g}", "3:4", judge)
        student.update({image: score / 10 for image, score in judge.items()})
        flipped.update({image: -score for image, score in judge.items()})
    agree = best_of_n(pairs, *_logits(pairs, student), DIMS, tie_threshold=0.0, samples=500)["total"]
    assert agree.hit.accuracy == 1.0 and agree.chance == 0.25 and agree.lift_ci_low == agree.lift_ci_high == 0.75
    assert agree.beats_chance and agree.as_dict()["beats_chance"]
    worst = best_of_n(pairs, *_logits(pairs, flipped), DIMS, tie_threshold=0.0, samples=500)["total"]
    assert worst.hit.accuracy == 0.0 and worst.lift_ci_high == -0.25 and not worst.beats_chance
