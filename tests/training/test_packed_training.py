"""Packed batching (the default) and data workers in the training loop: run, report padding, keep old run keys."""

import hashlib
import json
from collections import Counter

import torch
from safetensors.torch import load_file

from aesthetic_platform.model import train_step
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


def test_packing_is_the_default_and_the_run_key_ignores_only_where_and_how_often_images_are_decoded():
    assert TrainConfig().batching == "packed"
    config = TrainConfig(batching="bucketed")
    fields = {key: value for key, value in config.model_dump(mode="json").items() if key not in ("data_workers", "image_cache_mb")}
    architecture = config.model_config_for().model_dump(mode="json")
    payload = json.dumps({"config": fields, "data": "d", "architecture": architecture}, sort_keys=True)
    assert config.fingerprint("d") == hashlib.sha256(payload.encode()).hexdigest()[:16]
    assert TrainConfig(batching="bucketed", data_workers=2).fingerprint("d") == config.fingerprint("d")
    assert TrainConfig(batching="bucketed", image_cache_mb=0).fingerprint("d") == config.fingerprint("d")
    assert TrainConfig(batching="packed").fingerprint("d") != config.fingerprint("d")


def test_a_named_config_changed_in_code_is_another_run(monkeypatch):
    """Same name, same pairs, another architecture: a new run key, so nothing resumes or reuses the old weights."""
    from aesthetic_platform.model import config as model_config

    config = TrainConfig()
    before = config.fingerprint("d")
    tiny = model_config.MODEL_CONFIGS["tiny"]
    vision = {**tiny.image.open_clip_config["vision_cfg"], "pos_embed_type": "learnable"}
    changed = tiny.model_copy(update={"image": tiny.image.model_copy(update={
        "open_clip_config": {**tiny.image.open_clip_config, "vision_cfg": vision}})})
    monkeypatch.setitem(model_config.MODEL_CONFIGS, "tiny", changed)
    assert config.fingerprint("d") != before
    monkeypatch.setitem(model_config.MODEL_CONFIGS, "tiny", tiny)
    assert config.fingerprint("d") == before


def test_data_workers_train_the_same_weights(data_root):
    """Decoding in DataLoader workers changes where images are read, not what is trained."""
    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    weights = []
    for workers in (0, 2):
        config = TrainConfig(epochs=2, batch_size=4, max_steps=3, batching="packed", data_workers=workers)
        result = train(config, splits.train, [], data_root.models / f"runs-{workers}")
        weights.append(load_file(result.model_dir / "model.safetensors"))
    assert weights[0].keys() == weights[1].keys()
    # Not bit-equal: two in-process runs already differ in the last bits (threaded float reductions), and
    # AdamW turns that ~1e-10 noise into steps of up to lr * noise / eps (measured up to 2.4e-5) on
    # parameters with no real gradient: a head's last bias, which shifts winner and loser alike, and dead
    # ReLU units. A different dropout draw or another batch moves weights by ~1e-3.
    assert all(torch.allclose(weights[0][name], weights[1][name], atol=1e-4) for name in weights[0])


def test_each_image_is_prepared_once_per_run_and_the_cache_trains_the_same_weights(data_root, monkeypatch):
    """Two epochs and three validations read every image several times; the cache prepares each once."""
    write_synthetic_pairs(data_root, pairs=24)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    prepared: Counter[str] = Counter()
    prepare = train_step.prepare_image

    def counting(path, *args, **kwargs):
        prepared[str(path)] += 1
        return prepare(path, *args, **kwargs)

    monkeypatch.setattr(train_step, "prepare_image", counting)
    images = {path for pair in [*splits.train, *splits.val] for path in (pair.image_winner_path, pair.image_loser_path)}
    weights, reads = [], []
    for cache_mb in (0, 64):
        prepared.clear()
        config = TrainConfig(epochs=2, batch_size=4, batching="packed", image_cache_mb=cache_mb)
        result = train(config, splits.train, splits.val, data_root.models / f"runs-{cache_mb}")
        weights.append(load_file(result.model_dir / "model.safetensors"))
        reads.append(dict(prepared))
    uncached, cached = reads
    assert set(uncached) == set(cached) == images
    assert min(uncached.values()) >= 2 and set(cached.values()) == {1}
    assert all(torch.allclose(weights[0][name], weights[1][name], atol=1e-4) for name in weights[0])


def test_dataloader_workers_get_no_copy_of_the_image_cache(data_root, tmp_path):
    """Each worker process would fill its own copy, up to ``image_cache_mb`` each: with workers the train
    dataset prepares on every access, and the run's cache (kept in the main process) serves validation only."""
    from aesthetic_platform.training.distributed import DistContext
    from aesthetic_platform.training.loop import _build_run

    write_synthetic_pairs(data_root, pairs=12)
    splits = load_pair_splits(data_root.table("preference_pairs"))
    in_process = _build_run(TrainConfig(batching="packed"), splits.train, tmp_path / "a", DistContext())
    assert in_process.dataset.cache is in_process.images
    with_workers = _build_run(TrainConfig(batching="packed", data_workers=2), splits.train, tmp_path / "b", DistContext())
    assert with_workers.dataset.cache is None and with_workers.images is not None
