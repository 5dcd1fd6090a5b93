"""The preference-pair dataset: winner beats loser, prompts never leak across splits."""

import datetime as dt
import subprocess
import sys

import polars as pl
import pytest
from pydantic import ValidationError

from aesthetic_platform.judging import (
    HeuristicJudge,
    build_pair_dataset,
    calibrate,
    judge_batch,
    judge_cache,
    split_for,
    write_pair_dataset,
)
from aesthetic_platform.judging.calibration import CalibrationConfig
from aesthetic_platform.judging.dataset import (
    SplitConfig,
    missing_ratios,
    prompts_in_several_splits,
    ratio_balance,
    ratio_balance_problems,
    winners_beat_losers,
)
from aesthetic_platform.prompts import text_hash
from aesthetic_platform.schemas import (
    HUMAN_PREFERENCES,
    PREFERENCE_PAIRS,
    RATIOS,
    DimScores,
    HumanPreference,
    Judgment,
    PreferencePair,
)
from tests.judging.conftest import BATCH, make_batch


def row(pair, order, winner, total_a, total_b, prompt="p", status="judged", **extra):
    scores = None if status == "failed" else ({"total": total_a, "color": 5.0}, {"total": total_b, "color": 6.0})
    return Judgment(
        pair_id=pair, batch="b", prompt_id="p" + prompt, prompt=prompt, prompt_hash=text_hash(prompt), order=order,
        image_a_id=f"{pair}-a", image_b_id=f"{pair}-b", image_a_path="/x/a.png", image_b_path="/x/b.png",
        image_a_sha256="a" * 64, image_b_sha256="b" * 64, ratio_a="1:1", ratio_b="16:9", status=status,
        scores_a=scores and scores[0], scores_b=scores and scores[1], winner=winner if status == "judged" else "",
        judge_model="m", judge_prompt_version="v", from_cache=False, attempts=1, latency_ms=1.0,
        prompt_tokens=0, completion_tokens=0, judged_at=dt.datetime.now(dt.UTC), **extra,
    )


def test_pairs_follow_the_mean_of_both_orders_and_flag_flips():
    rows = [
        row("q1", "ab", "b", 6.0, 7.0), row("q1", "ba", "b", 6.5, 7.5),  # consistent: b wins
        row("q2", "ab", "a", 8.0, 7.0), row("q2", "ba", "b", 6.0, 8.5),  # flipped: kept, flagged
        row("q3", "ab", "a", 7.0, 7.0), row("q3", "ba", "a", 7.0, 7.0),  # tie on total: no preference
        row("q4", "ab", "a", 9.0, 2.0), row("q4", "ba", "", 0, 0, status="failed"),  # incomplete
    ]
    dataset = build_pair_dataset(rows)
    pairs = {p.pair_id: p for p in dataset.pairs}
    assert set(pairs) == {"q1", "q2"} and dataset.skipped == {"tie": 1, "failed": 1}
    q1 = pairs["q1"]
    assert q1.winner_id == "q1-b" and q1.loser_id == "q1-a" and q1.consistent
    assert q1.scores["total"].winner == 7.25 and q1.scores["total"].loser == 6.25
    assert q1.winner_ratio == "16:9" and q1.loser_ratio == "1:1"
    q2 = pairs["q2"]
    assert not q2.consistent and q2.winner_id == "q2-b"  # mean totals 7.0 vs 7.75
    assert q2.scores["color"].winner == 6.0 and q2.scores["color"].loser == 5.0


def test_no_prompt_in_two_splits():
    prompts = [f"prompt number {i}" for i in range(300)]
    # the same prompt in several batches and pairs must land in one split
    rows = [row(f"q{i}-{k}", "ab", "a", 8.0, 6.0, prompt=p) for i, p in enumerate(prompts) for k in range(3)]
    frame = PREFERENCE_PAIRS.frame(build_pair_dataset(rows).pairs)
    assert prompts_in_several_splits(frame) == []
    splits = frame.group_by("split").agg(pl.col("prompt_hash").n_unique())
    counts = dict(splits.iter_rows())
    assert set(counts) == {"train", "val", "test"} and 190 < counts["train"] < 290  # ~80/10/10 of 300 prompts
    train = set(frame.filter(pl.col("split") == "train")["prompt_hash"])
    test = set(frame.filter(pl.col("split") == "test")["prompt_hash"])
    assert not train & test
    assert split_for(text_hash("x"), (0.8, 0.1, 0.1), "a") == split_for(text_hash("x"), (0.8, 0.1, 0.1), "a")
    # the check catches a leak when there is one
    leaked = frame.with_columns(
        pl.when(pl.col("pair_id") == frame["pair_id"][0]).then(pl.lit("test")).otherwise(pl.col("split")).alias("split")
    )
    if frame["split"][0] != "test":
        assert prompts_in_several_splits(leaked) == [frame["prompt_hash"][0]]


def test_checks_catch_bad_tables():
    frame = PREFERENCE_PAIRS.frame(build_pair_dataset([row("q1", "ab", "a", 8.0, 6.0)]).pairs)
    assert winners_beat_losers(frame) == []
    swapped = frame.with_columns(
        pl.struct(total=pl.struct(winner=pl.lit(1.0), loser=pl.lit(2.0)), color=pl.col("scores").struct.field("color")).alias("scores")
    )
    assert winners_beat_losers(swapped) == ["q1"]
    assert missing_ratios(frame) == ["3:4", "9:16", "4:3"]


def test_judged_batch_gives_a_parquet_that_polars_alone_reads(data_root):
    make_batch(data_root, prompts=3, per_prompt=3, ratios_per_prompt=2)
    planned = len(judge_batch(data_root, BATCH, HeuristicJudge()).rows) // 2
    from aesthetic_platform.judging import load_judgments

    dataset = build_pair_dataset(load_judgments(data_root), SplitConfig(train_fraction=0.5, val_fraction=0.25))
    path = write_pair_dataset(data_root, dataset)
    code = (
        "import sys, polars as pl; df = pl.read_parquet(sys.argv[1]); "
        "s = df['scores'].struct.field('total'); assert (s.struct.field('winner') > s.struct.field('loser')).all(); "
        "print(df.height, sorted(df['scores'].struct.fields))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True).stdout.split(maxsplit=1)
    assert int(out[0]) == len(dataset.pairs) == planned - dataset.skipped.total()
    assert out[1].strip() == str(sorted(["total", "composition", "color", "style_fit", "prompt_alignment"]))
    frame = PREFERENCE_PAIRS.read(path)
    assert missing_ratios(frame) == [] and prompts_in_several_splits(frame) == []
    # the pair kind and the ratio pair are recorded and follow the two ratios
    same = frame.filter(pl.col("pair_kind") == "same_ratio")
    cross = frame.filter(pl.col("pair_kind") == "cross_ratio")
    assert same.height >= 3 * 2 * 3 - dataset.skipped.total() and cross.height > 0
    assert (same["winner_ratio"] == same["loser_ratio"]).all() and (cross["winner_ratio"] != cross["loser_ratio"]).all()
    assert set(same["ratio_pair"]) == {f"{r}|{r}" for r in same["winner_ratio"]}
    assert all(pair.split("|")[0] != pair.split("|")[1] for pair in cross["ratio_pair"])


def _pair(i: int, split: str, ratio_w: str, ratio_l: str) -> PreferencePair:
    scores = {"total": DimScores(winner=7.0, loser=6.0)}
    return PreferencePair(
        pair_id=f"q{i}", batch="b", prompt_id=f"p{i // 4}", prompt="p", prompt_hash=f"{split}-{i // 4}", winner_id=f"w{i}",
        loser_id=f"l{i}", image_winner_path="/w.png", image_loser_path="/l.png", winner_ratio=ratio_w, loser_ratio=ratio_l,
        scores=scores, judge_model="m", judge_prompt_version="v", consistent=True, split=split,
    )


def _balanced(per_ratio: int = 3) -> list[PreferencePair]:
    rows, ratios = [], list(RATIOS)
    for split in ("train", "val", "test"):
        for k, ratio in enumerate(ratios):
            rows += [_pair(len(rows) + j, split, ratio, ratio) for j in range(per_ratio)]
            rows.append(_pair(len(rows), split, ratio, ratios[(k + 1) % len(ratios)]))
    return rows


def test_pair_kind_and_ratio_pair_are_derived_and_checked():
    assert _pair(0, "train", "16:9", "1:1").pair_kind == "cross_ratio" and _pair(0, "train", "16:9", "1:1").ratio_pair == "1:1|16:9"
    assert _pair(0, "train", "4:3", "4:3").pair_kind == "same_ratio" and _pair(0, "train", "4:3", "4:3").ratio_pair == "4:3|4:3"
    with pytest.raises(ValidationError, match="contradicts"):
        PreferencePair.model_validate({**_pair(0, "train", "4:3", "1:1").model_dump(), "pair_kind": "same_ratio"})


def test_ratio_balance_check_catches_unbalanced_splits():
    frame = PREFERENCE_PAIRS.frame(_balanced())
    assert ratio_balance_problems(frame) == []
    assert ratio_balance(frame)["test"] == {**{f"same_ratio {r}": 3 for r in RATIOS}, "cross_ratio": 5}
    # test loses its 9:16 same-ratio pairs, val its cross-ratio pairs
    holes = frame.filter(
        ~((pl.col("split") == "test") & (pl.col("pair_kind") == "same_ratio") & (pl.col("winner_ratio") == "9:16"))
        & ~((pl.col("split") == "val") & (pl.col("pair_kind") == "cross_ratio"))
    )
    assert ratio_balance_problems(holes) == ["val: no cross_ratio pairs", "test: no same_ratio pairs at 9:16"]
    # train has 1:1 at a third of the others' count: present, but under half an even share
    skewed = PREFERENCE_PAIRS.frame([p for p in _balanced(per_ratio=6) if not (
        p.split == "train" and p.pair_kind == "same_ratio" and p.winner_ratio == "1:1" and int(p.pair_id[1:]) % 7 > 1)])
    problems = ratio_balance_problems(skewed)
    assert len(problems) == 1 and problems[0].startswith("train: 2 same_ratio pairs at 1:1, under 50% of an even share")
    assert ratio_balance_problems(PREFERENCE_PAIRS.empty()) == ["the table has no pairs"]


def test_calibration_with_human_preferences(data_root):
    make_batch(data_root)
    rows = judge_batch(data_root, BATCH, HeuristicJudge()).rows
    judged = [r for r in rows if r.order == "ab"]
    # humans agree with the judge on two pairs and disagree on one; one pair's image is gone
    humans = []
    for i, r in enumerate(judged[:3]):
        winner_is_a = (r.winner == "a") != (i == 2)
        w, l = (r.image_a_path, r.image_b_path) if winner_is_a else (r.image_b_path, r.image_a_path)
        humans.append(HumanPreference(
            pair_id=f"h{i}", prompt_id=r.prompt_id, prompt=r.prompt, prompt_hash=r.prompt_hash, winner_path=w, loser_path=l,
            annotator="ann", created_at=dt.datetime.now(dt.UTC),
        ))
    humans.append(humans[0].model_copy(update={"pair_id": "h3", "winner_path": "/gone.png"}))
    HUMAN_PREFERENCES.write(humans, data_root.table("human_preferences"))
    report = calibrate(HeuristicJudge(), rows, judge_cache(data_root), humans, CalibrationConfig(repeat_sample=4))
    metrics = report.metrics()
    assert metrics["json_valid_first_try"] == 1.0 and metrics["swap_consistency"] == 1.0 and metrics["swap_pairs"] == 6
    assert metrics["repeat_agreement"] == 1.0 and metrics["repeat_pairs"] == 4 and report.repeat_calls == 4
    assert metrics["human_pairs"] == 3 and abs(metrics["human_agreement"] - 2 / 3) < 1e-9 and report.human_skipped == 1
    assert "agreement with humans | 66.7% (2/3)" in report.markdown()
    # a second calibration pays nothing: repeats and human pairs are cached
    again = calibrate(HeuristicJudge(), rows, judge_cache(data_root), humans, CalibrationConfig(repeat_sample=4))
    assert again.repeat_calls == 0 and again.human_calls == 0
