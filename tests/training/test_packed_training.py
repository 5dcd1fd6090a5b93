"""Opt-in packed batching in the training loop: runs, reports its padding, keeps old run keys."""

import hashlib
import json

from aesthetic_platform.training import TrainConfig, load_pair_splits, train
from aesthetic_platform.training.loop import data_fingerprint
from tests.fixtures.pairs import write_synthetic_pairs


def test_packed_training_runs_and_packs_almost_without_padding(data_root):
    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    config = TrainConfig(epochs=2, batch_size=4, max_steps=2, batching="packed")
    result = train(config, splits.train, [], data_root.models / "runs")
    assert result.steps == 2
    assert (result.model_dir / "model.safetensors").exists()
    assert 0.0 <= result.padded_fraction <= 0.05
    bucketed = config.model_copy(update={"batching": "bucketed"})
    assert result.run_key == config.fingerprint(data_fingerprint(splits.train)) != bucketed.fingerprint(data_fingerprint(splits.train))


def test_the_default_stays_bucketed_with_the_run_keys_made_before_the_knob():
    config = TrainConfig()
    assert config.batching == "bucketed"
    before = {key: value for key, value in config.model_dump(mode="json").items() if key != "batching"}
    payload = json.dumps({"config": before, "data": "d"}, sort_keys=True)
    assert config.fingerprint("d") == hashlib.sha256(payload.encode()).hexdigest()[:16]
