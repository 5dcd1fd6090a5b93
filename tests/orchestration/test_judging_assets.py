"""The judging assets in-process: checks, cache reuse, the failure-rate gate, and the demo's pair dataset."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import polars as pl

from aesthetic_platform.assets import candidate_images, content_audit, judge_calibration, judgments, preference_pairs, prompts
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.judging.dataset import ratio_balance_problems
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.resources import DataRootResource, ImageGeneratorResource, JudgeResource, MLflowResource, PromptLLMResource
from aesthetic_platform.resources.moderation import moderation_from_env
from aesthetic_platform.schemas import PREFERENCE_PAIRS
from tests.fixtures.judge_server import running_judge_server

REPO = Path(__file__).resolve().parents[2]
AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))
# 2 seeds at each of 2 ratios per prompt: 2 same-ratio + 2 cross-ratio pairs (96x96 keeps the five ratios' sizes apart)
SMALL = {"ops": {"prompts": {"config": {"count": 3}}, "candidate_images": {"config": {"per_prompt": 2, "pixel_budget": 96 * 96}}}}
CHAIN = [prompts, candidate_images, content_audit, judgments]


def _resources(home: Path, judge: JudgeResource | None = None) -> dict:
    return {
        "data_root": DataRootResource(home=str(home)), "image_generator": ImageGeneratorResource(),
        "prompt_llm": PromptLLMResource(), "judge": judge or JudgeResource(), "moderation": moderation_from_env(False),
        "mlflow_tracking": MLflowResource(),  # where the content audit looks for a registered safety classifier
    }


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_judging_chain_and_pair_dataset_in_process(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["j1", "j2"])
        for batch in ("j1", "j2"):
            result = dg.materialize(CHAIN, partition_key=batch, instance=instance, resources=_resources(tmp_path), run_config=SMALL)
            assert result.success
            metadata = result.asset_materializations_for_node("judgments")[0].metadata
            assert metadata["judge_calls"].value == 24 and metadata["failed"].value == 0  # 3 prompts x 4 pairs x 2 orders
            # progress is a handful of event-log lines, not one per judge call or image
            for unit, count in (("judge calls", 24), ("images", 12)):
                prefix = f"batch {batch}: "
                messages = [e.user_message for e in instance.all_logs(result.run_id)]
                lines = [m for m in messages if m.startswith(prefix) and m.endswith(unit)]
                assert lines[-1] == f"batch {batch}: {count}/{count} {unit}" and len(lines) <= 12, lines
            assert _checks(result)["judgments_schema"] and _checks(result)["judgments_failure_rate"]
            # paths in the event log are relative to the data root: they stay true after it moves
            assert metadata["table"].value == "tables/judgments"
            manifest = result.asset_materializations_for_node("candidate_images")[0].metadata
            assert (manifest["manifest"].value, manifest["images_dir"].value) == ("tables/candidate_images", "images")
        again = dg.materialize(CHAIN, partition_key="j1", instance=instance, resources=_resources(tmp_path), run_config=SMALL)
        assert again.asset_materializations_for_node("judgments")[0].metadata["judge_calls"].value == 0

        pairs = dg.materialize(
            [judge_calibration, preference_pairs], instance=instance, resources=_resources(tmp_path),
            selection=[judge_calibration, preference_pairs],
        )
        assert pairs.success
        checks = _checks(pairs)
        balance = checks.pop("pairs_ratio_balance")
        assert checks == {
            "pairs_schema": True, "pairs_winner_beats_loser": True, "pairs_no_prompt_in_two_splits": True,
            "pairs_all_ratios_present": True,
        }
        meta = pairs.asset_materializations_for_node("preference_pairs")[0].metadata
        calibration = pairs.asset_materializations_for_node("judge_calibration")[0].metadata
        assert calibration["swap_consistency"].value == 1.0 and "Judge calibration" in calibration["report"].value
        assert calibration["path"].value == "reports/judge_calibration.md" and meta["table"].value == "tables/preference_pairs.parquet"
    frame = pl.read_parquet(DataRoot(tmp_path).table("preference_pairs"))
    assert frame.height == meta["pairs"].value > 16
    assert set(frame["batch"]) == {"j1", "j2"} and set(frame["pair_kind"]) == {"same_ratio", "cross_ratio"}
    # six prompts cannot fill three splits with every ratio: the balance check says so exactly when the table is unbalanced
    assert balance == (ratio_balance_problems(PREFERENCE_PAIRS.read(DataRoot(tmp_path).table("preference_pairs"))) == [])
    assert sum(sum(kinds.values()) for kinds in meta["pair_kinds"].value.values()) == frame.height
    assert (DataRoot(tmp_path).root / "reports" / "judge_calibration.md").exists()


def test_failure_rate_above_threshold_fails_the_asset_and_names_the_pairs(tmp_path):
    with running_judge_server() as server, dg.instance_for_test() as instance:
        server.state.inject("server_error", times=None)
        judge = JudgeResource(kind="openai", base_url=server.base_url, model="local-vlm", api_key="k", max_attempts=2, timeout_s=5)
        instance.add_dynamic_partitions(prompt_batch.name, ["f1"])
        config = {"ops": {**SMALL["ops"], "judgments": {"config": {"both_orders": False}}}}
        result = dg.materialize(CHAIN, partition_key="f1", instance=instance, resources=_resources(tmp_path, judge),
                                run_config=config, raise_on_error=False)
        assert not result.success
        failure = result.failure_data_for_node("judgments")
        assert "12 of 12 judge calls failed" in str(failure.user_failure_data.description)
        assert len(failure.user_failure_data.metadata["failed_pairs"].value) == 12
        assert "HTTP 500" in failure.user_failure_data.metadata["failed_pairs"].value[0]
        # the verdict table was still written: what failed, and why
        table = pl.read_parquet(DataRoot(tmp_path).table("judgments", "f1"))
        assert table.height == 12 and set(table["status"]) == {"failed"} and table["scores_a"].null_count() == 12

        # the server recovers: a re-run asks only for the failed pairs, then nothing
        server.state.rules.clear()
        before = server.state.requests
        ok = dg.materialize(CHAIN, partition_key="f1", instance=instance, resources=_resources(tmp_path, judge), run_config=config)
        assert ok.success and server.state.requests - before == 12


def test_demo_leaves_a_pair_dataset_polars_alone_can_read(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "AESTHETIC_HOME": str(home)}
    out = subprocess.run(
        [
            AESTHETIC,
            "demo",
            "--home",
            str(home),
            "--batches",
            "2",
            "--prompts",
            "3",
            "--per-prompt",
            "3",
            "--pixel-budget",
            "4096",
            "--no-train",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "preference pairs" in out.stdout
    pairs_path = home / "tables" / "preference_pairs.parquet"
    code = (
        "import sys, polars as pl; df = pl.read_parquet(sys.argv[1]); "
        "print(df.height, df['batch'].n_unique(), sorted(df['split'].unique()))"
    )
    read = subprocess.run([sys.executable, "-c", code, str(pairs_path)], capture_output=True, text=True, check=True)
    read = read.stdout.split(maxsplit=2)
    assert int(read[0]) > 10 and read[1] == "2"  # 2 batches x 3 prompts x (2 ratios x 3 same-ratio pairs + cross-ratio), minus ties
    assert (home / "reports" / "judge_calibration.md").exists()


def test_a_two_partition_run_reports_each_partition_its_own_numbers(tmp_path):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["m1", "m2"])
        candidates = {"per_prompt": 3, "ratios_per_prompt": 1, "pixel_budget": 48 * 48}
        config = {"ops": {"prompts": {"config": {"count": 2}}, "candidate_images": {"config": candidates}}}
        first = dg.materialize(CHAIN, partition_key="m1", instance=instance, resources=_resources(tmp_path), run_config=config)
        assert first.success
        # m2 gets one prompt more, then both batches run again in ONE run over the range
        bigger = {"ops": {**config["ops"], "prompts": {"config": {"count": 3}}}}
        assert dg.materialize(CHAIN, partition_key="m2", instance=instance, resources=_resources(tmp_path), run_config=bigger).success
        job = dg.Definitions(assets=CHAIN, resources=_resources(tmp_path)).resolve_implicit_global_asset_job_def()
        tags = {"dagster/asset_partition_range_start": "m1", "dagster/asset_partition_range_end": "m2"}
        both = job.execute_in_process(run_config=config, instance=instance, tags=tags)
        assert both.success
        observations = [
            e.asset_observation_data.asset_observation for e in both.all_events if e.event_type_value == "ASSET_OBSERVATION"
        ]
        prompts_seen = {o.partition: o.metadata["prompts"].value for o in observations if o.asset_key.to_user_string() == "prompts"}
        verdicts = {o.partition: o.metadata["verdicts"].value for o in observations if o.asset_key.to_user_string() == "judgments"}
        materialization = both.asset_materializations_for_node("judgments")[0].metadata
    assert prompts_seen == {"m1": 2, "m2": 2}
    assert verdicts["m1"] == verdicts["m2"] == 2 * 3 * 2  # 2 prompts x 3 pairs x both orders, each batch on its own
    assert materialization["run_verdicts"].value == verdicts["m1"] + verdicts["m2"]
    assert materialization["partitions_in_run"].value == 2
