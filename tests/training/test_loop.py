"""The training loop: learns, logs every head, resumes after a kill, and DDP matches one process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from aesthetic_platform.training import TrainConfig, load_pair_splits, train
from aesthetic_platform.training.config import ModelOverrides, OptimizerConfig
from aesthetic_platform.training.loop import CHECKPOINT_DIR, STATE_FILE
from tests.fixtures.locks import held_by_another_process
from tests.fixtures.pairs import write_synthetic_pairs

REPO = Path(__file__).resolve().parents[2]


class Recorder:
    def __init__(self):
        self.rows = []

    def log_metrics(self, metrics, step):
        self.rows.append((step, metrics))


def test_learns_logs_every_head_and_saves(data_root):
    write_synthetic_pairs(data_root, pairs=36)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    recorder = Recorder()
    config = TrainConfig(
        epochs=6, batch_size=8, optimizer=OptimizerConfig(tower_lr=1e-3, head_lr=3e-3, warmup_steps=2), early_stopping_patience=10
    )
    result = train(config, splits.train, splits.val, data_root.models / "runs", logger=recorder)
    step_keys = set(next(m for _, m in recorder.rows if "loss/objective" in m))  # step 0 holds the prompt-length counts
    dims = config.model_config_for().dimensions
    assert {f"loss/head/{d}" for d in dims} | {"loss/objective", "throughput/pairs_per_s"} <= step_keys
    assert any("val_accuracy/color" in m for _, m in recorder.rows)
    assert result.steps == max(step for step, _ in recorder.rows)
    assert (result.model_dir / "model.safetensors").exists()
    assert result.val_accuracy["total"] >= 0.75 and result.val_accuracy["color"] >= 0.75, result.val_accuracy
    assert 0.0 <= result.padded_fraction < 1.0


def test_same_config_and_data_resumes(data_root):
    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    first = train(TrainConfig(epochs=2, batch_size=4, max_steps=3, checkpoint_every=1), splits.train, [], data_root.models / "runs")
    again = train(TrainConfig(epochs=2, batch_size=4, max_steps=5, checkpoint_every=1), splits.train, [], data_root.models / "runs")
    assert first.resumed_from_step == 0 and first.steps == 3
    assert again.run_key != first.run_key and again.resumed_from_step == 0  # max_steps is part of the config
    same = train(TrainConfig(epochs=2, batch_size=4, max_steps=3, checkpoint_every=1), splits.train, [], data_root.models / "runs")
    assert same.resumed_from_step == 3 and same.steps == 3


def _entry_args(root, config: TrainConfig, result: Path) -> list[str]:
    config_path = result.with_suffix(".config.json")
    config_path.write_text(config.model_dump_json())
    return [
        "-m", "aesthetic_platform.training.entry", "--config", str(config_path),
        "--pairs", str(root.table("preference_pairs")), "--runs-dir", str(root.models / "runs"), "--result", str(result),
    ]


def test_killed_training_resumes_from_its_checkpoint(data_root, tmp_path):
    write_synthetic_pairs(data_root, pairs=48)
    config = TrainConfig(epochs=200, batch_size=4, max_steps=60, checkpoint_every=5, early_stopping_patience=1000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, *_entry_args(data_root, config, tmp_path / "r1.json")], cwd=REPO, env=env)
    state = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        runs = data_root.models / "runs"
        state = next(runs.glob(f"*/{CHECKPOINT_DIR}/{STATE_FILE}"), None) if runs.exists() else None
        if state is not None and torch.load(state, weights_only=False)["step"] >= 10:
            break
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    killed_at = torch.load(state, weights_only=False)["step"]
    assert 10 <= killed_at < 60
    subprocess.run([sys.executable, *_entry_args(data_root, config, tmp_path / "r2.json")], cwd=REPO, env=env, check=True, timeout=600)
    result = json.loads((tmp_path / "r2.json").read_text())
    assert result["resumed_from_step"] >= killed_at
    assert result["steps"] == 60


@pytest.mark.slow
def test_ddp_two_cpu_processes_reach_the_same_weights(data_root, tmp_path):
    write_synthetic_pairs(data_root, pairs=16, ratios=("1:1",), splits=("train",))
    config = TrainConfig(
        epochs=2,
        batch_size=8,
        overrides=ModelOverrides(head_dropout=0.0, tower_dropout=0.0),
        optimizer=OptimizerConfig(warmup_steps=0),
        seed=3,
        batching="bucketed",  # bit-for-bit rows on both sides; packed DDP is held to the gradient test below
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    single_root, ddp_root = tmp_path / "single", tmp_path / "ddp"
    args = _entry_args(data_root, config, tmp_path / "single.json")
    args[args.index("--runs-dir") + 1] = str(single_root)
    subprocess.run([sys.executable, *args], cwd=REPO, env=env, check=True, timeout=600)
    args = _entry_args(data_root, config, tmp_path / "ddp.json")
    args[args.index("--runs-dir") + 1] = str(ddp_root)
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args],
        cwd=REPO, env=env, check=True, timeout=600,
    )
    single = json.loads((tmp_path / "single.json").read_text())
    ddp = json.loads((tmp_path / "ddp.json").read_text())
    assert single["steps"] == ddp["steps"] == 4
    a, b = load_file(Path(single["model_dir"]) / "model.safetensors"), load_file(Path(ddp["model_dir"]) / "model.safetensors")
    assert a.keys() == b.keys()
    worst = max(float((a[k] - b[k]).abs().max()) for k in a)
    assert worst < 1e-4, worst  # unsynced ranks would each have trained on half the pairs


def test_packed_rank_shards_average_to_the_one_process_gradient(data_root):
    """What DDP averages over two packed ranks is the gradient one process gets from the whole batch.

    Compared as gradients, not as weights after AdamW: each rank packs its half into other rows
    than one process packs the whole batch, so scores agree only to float32 rounding, and AdamW
    turns sign flips of gradients that are ~0 into whole-learning-rate moves."""
    from aesthetic_platform.model import AestheticScorer
    from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossConfig
    from aesthetic_platform.model.packing import default_token_budget
    from aesthetic_platform.model.train_step import PackedPairCollator, PreferencePairDataset
    from aesthetic_platform.training.loop import PairLossModule

    pairs = write_synthetic_pairs(data_root, pairs=8, splits=("train",))  # every ratio: rows mix sizes
    torch.manual_seed(3)
    model = AestheticScorer(TrainConfig(overrides=ModelOverrides(head_dropout=0.0)).model_config_for()).eval()
    step = PairLossModule(model, CombinedRankingLoss(model.dimensions, RankingLossConfig(tie_threshold=0.0)))
    dataset = PreferencePairDataset(pairs, model)
    collate = PackedPairCollator.for_model(model, default_token_budget(model.config.image.patch_budget))

    def mean_gradient(shards):
        total = torch.zeros(sum(p.numel() for p in model.parameters()))
        for shard in shards:
            model.zero_grad()
            step(collate([dataset[i] for i in shard])).loss.objective.backward()
            total += torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in model.parameters()])
        return total / len(shards)

    one = mean_gradient([list(range(8))])
    ranks = mean_gradient([list(range(0, 8, 2)), list(range(1, 8, 2))])  # DistContext.shard for world size 2
    assert one.norm() > 0
    assert float((one - ranks).norm() / one.norm()) < 1e-5


def test_a_second_training_of_the_same_run_stops_at_once_and_a_killed_one_leaves_no_stale_lock(data_root):
    """Two trainings of one run would resume from one checkpoint and overwrite each other's: the second stops with
    TrainingBusyError. The first here is another process holding the run's lock, killed with SIGKILL as a crash would."""
    from aesthetic_platform.training.loop import RUN_LOCK, TrainingBusyError, data_fingerprint

    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    config = TrainConfig(epochs=1, batch_size=4, max_steps=2)
    lock = data_root.models / "runs" / config.fingerprint(data_fingerprint(splits.train)) / RUN_LOCK
    with held_by_another_process(lock):
        with pytest.raises(TrainingBusyError, match=r"run \w+ \(same config and train split\) is being trained by another process"):
            train(config, splits.train, [], data_root.models / "runs")
        assert not (lock.parent / CHECKPOINT_DIR).exists()  # nothing of the run was touched
        other = train(TrainConfig(epochs=1, batch_size=4, max_steps=1), splits.train, [], data_root.models / "runs")
        assert other.steps == 1  # another config is another run: not held up
    assert train(config, splits.train, [], data_root.models / "runs").steps == 2
