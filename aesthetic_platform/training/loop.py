"""The training loop: seeded, resumable, DDP-aware, with every sub-loss reported.

A run lives in a folder keyed by ``TrainConfig.fingerprint(data)``: the same config on
the same pairs finds its own ``checkpoint/state.pt`` and continues from that step (a
crash or a killed process loses at most ``checkpoint_every`` steps); anything else
starts fresh. The finished model is written with ``save_pretrained`` to ``model/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from aesthetic_platform.atomic import held_exclusively, write_with
from aesthetic_platform.model.batching import PreparedImageCache, RatioBucketSampler
from aesthetic_platform.model.loss import CombinedRankingLoss
from aesthetic_platform.model.packing import PackedPairSampler, default_token_budget
from aesthetic_platform.model.predict import agreement, pair_logits, teacher_gaps
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.model.train_step import (
    PackedPairCollator,
    PairCollator,
    PreferencePairDataset,
    PromptLengths,
    check_prompt_lengths,
    pair_loss,
)
from aesthetic_platform.training.config import TrainConfig, save_training_config
from aesthetic_platform.training.distributed import DistContext, barrier, init_distributed

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
MODEL_DIR = "model"
BEST_DIR = "best"
#: Held by the run's main process while it trains: one process writes a run folder's checkpoints.
RUN_LOCK = "train.lock"

log = logging.getLogger(__name__)


class TrainingBusyError(RuntimeError):
    """Another process is training the same run (same config, same train split) now."""


class MetricsLogger(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...


@dataclass
class TrainResult:
    run_key: str
    model_dir: Path
    steps: int
    resumed_from_step: int
    epochs_completed: int
    stopped_early: bool
    val_accuracy: dict[str, float]
    padded_fraction: float
    pairs_per_second: float
    history: list[dict[str, float]] = field(default_factory=list)
    prompt_lengths: dict[str, PromptLengths] = field(default_factory=dict)  # per split: prompts cut at the token limit

    def summary(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key, "model_dir": str(self.model_dir), "steps": self.steps,
            "resumed_from_step": self.resumed_from_step, "epochs_completed": self.epochs_completed,
            "stopped_early": self.stopped_early, "val_accuracy": self.val_accuracy,
            "padded_fraction": self.padded_fraction, "pairs_per_second": self.pairs_per_second,
            "prompt_lengths": {split: lengths.summary() for split, lengths in self.prompt_lengths.items()},
        }


class PairLossModule(nn.Module):
    """Model + loss behind one ``forward`` so DDP sees (and syncs) the whole step."""

    def __init__(self, model: AestheticScorer, loss_fn: CombinedRankingLoss) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return pair_loss(self.model, batch, self.loss_fn)


def set_tower_dropout(model: AestheticScorer, p: float) -> None:
    """Hub towers bring their own dropout (XLM-R: 0.1); DDP equivalence checks and tiny runs turn it off."""
    for tower in (model.visual, model.text_encoder):
        for module in tower.modules():
            if isinstance(module, nn.Dropout):
                module.p = p


def data_fingerprint(pairs: Sequence) -> str:
    digest = hashlib.sha256()
    for pair_id in sorted(pair.pair_id for pair in pairs):
        digest.update(pair_id.encode())
    return digest.hexdigest()[:16]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_with_warmup(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def autocast_for(config: TrainConfig, device: torch.device):
    use_bf16 = config.precision == "bf16" or (config.precision == "auto" and device.type == "cuda")
    if use_bf16:
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return torch.autocast(device_type=device.type, enabled=False)


def validation_accuracy(
    model: AestheticScorer, pairs: Sequence, tie_threshold: float, device: torch.device, cache: PreparedImageCache | None = None
) -> dict[str, float]:
    if not pairs:
        return {}
    winners, losers = pair_logits(model, pairs, device=device, cache=cache)
    correct, counted = agreement(winners, losers, teacher_gaps(pairs, model.dimensions), tie_threshold)
    return {
        dim: float(correct[:, i].sum() / counted[:, i].sum()) if counted[:, i].any() else float("nan")
        for i, dim in enumerate(model.dimensions)
    }


def _save_state(path: Path, state: dict[str, Any]) -> None:
    write_with(path, lambda tmp: torch.save(state, tmp))


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _optimizer_step(trainable: nn.Module, batch, config: TrainConfig, context: DistContext):
    """Forward + backward + clipping; the caller steps the optimizer."""
    with autocast_for(config, context.device):
        result = trainable(batch)
    result.loss.objective.backward()
    torch.nn.utils.clip_grad_norm_(trainable.parameters(), config.optimizer.grad_clip)
    return result


@dataclass
class _Progress:
    """Everything a checkpoint must restore besides weights and optimizer state."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best: float = -1.0
    patience: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False


@dataclass
class _Run:
    """A run's model, data and optimizer, built once from the config."""

    config: TrainConfig
    context: DistContext
    run_dir: Path
    model: AestheticScorer
    dataset: PreferencePairDataset
    images: PreparedImageCache  # prepared train and val images, shared by the epochs
    collate: PairCollator | PackedPairCollator
    sampler: RatioBucketSampler | PackedPairSampler
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    total_steps: int

    @property
    def state_path(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR / STATE_FILE


def _build_run(config: TrainConfig, train_pairs: Sequence, run_dir: Path, context: DistContext) -> _Run:
    model = AestheticScorer(config.model_config_for()).to(context.device)
    if config.overrides.tower_dropout is not None:
        set_tower_dropout(model, config.overrides.tower_dropout)
    model.set_gradient_checkpointing(config.gradient_checkpointing)
    # one budget for both splits: train images are met first, so they are the ones kept when it runs out.
    # DataLoader workers decode on their own and would each fill a copy of the cache, so they get none.
    images = PreparedImageCache(config.image_cache_mb * 2**20)
    dataset = PreferencePairDataset(train_pairs, model, images if config.data_workers == 0 else None)
    sampler: RatioBucketSampler | PackedPairSampler
    collate: PairCollator | PackedPairCollator
    if config.batching == "packed":
        token_budget = default_token_budget(model.config.image.patch_budget)
        sampler = PackedPairSampler(dataset.item_grids(), config.batch_size, token_budget, shuffle=True, seed=config.seed)
        collate = PackedPairCollator.for_model(model, token_budget)
    else:
        sampler = RatioBucketSampler(dataset.item_grids(), batch_size=config.batch_size, shuffle=True, seed=config.seed)
        collate = PairCollator.for_model(model)
    steps_per_epoch = len(sampler)
    total_steps = min(config.max_steps or steps_per_epoch * config.epochs, steps_per_epoch * config.epochs)
    optim = config.optimizer
    optimizer = torch.optim.AdamW(model.param_groups(optim.head_lr, optim.tower_lr, optim.weight_decay))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(optim.warmup_steps, total_steps))
    return _Run(config, context, run_dir, model, dataset, images, collate, sampler, optimizer, scheduler, total_steps)


def _check_prompt_lengths(
    run: _Run, splits: dict[str, Sequence], logger: MetricsLogger | None
) -> dict[str, PromptLengths]:
    """Count, before the first step, the prompts the text tower will read only in part (a prompt file allows
    2,000 characters, the model reads ``text.max_length`` tokens): a warning, step-0 metrics and the result."""
    limit = run.model.config.text.max_length
    lengths = {
        split: check_prompt_lengths([pair.prompt for pair in pairs], run.model.tokenizer, limit) for split, pairs in splits.items()
    }
    if not run.context.is_main:
        return lengths
    for split, found in lengths.items():
        if found.over_limit:
            quoted = "; ".join(f"{prompt!r} ({tokens} tokens)" for prompt, tokens in found.examples)
            log.warning(
                f"{found.over_limit} of {found.prompts} {split} prompts ({found.pairs_over_limit} pairs) are longer than the model's "
                f"{limit} tokens and are cut to their first {limit} tokens; longest: {quoted}"
            )
    if logger is not None:
        metrics: dict[str, float] = {"data/prompt_token_limit": limit}
        for split, found in lengths.items():
            metrics[f"data/{split}/prompts_over_token_limit"] = found.over_limit
            metrics[f"data/{split}/pairs_over_token_limit"] = found.pairs_over_limit
        logger.log_metrics(metrics, 0)
    return lengths


def _resume(run: _Run) -> _Progress:
    """The saved progress of this run (same config, same data), or a fresh start."""
    if not run.state_path.exists():
        return _Progress(patience=run.config.early_stopping_patience)
    state = torch.load(run.state_path, map_location=run.context.device, weights_only=False)
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    _restore_rng(state["rng"])
    return _Progress(
        step=state["step"], epoch=state["epoch"], batch_in_epoch=state["batch_in_epoch"], best=state["best"],
        patience=state["patience"], history=state["history"],
    )


def _checkpoint(run: _Run, progress: _Progress, next_epoch: int, next_batch: int) -> None:
    if run.context.is_main:
        _save_state(run.state_path, {
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "step": progress.step, "epoch": next_epoch, "batch_in_epoch": next_batch, "best": progress.best,
            "patience": progress.patience, "history": progress.history, "rng": _rng_state(), "run_key": run.run_dir.name,
        })
    barrier(run.context)


def _wrap_for_ddp(run: _Run, loss_fn: CombinedRankingLoss) -> nn.Module:
    trainable: nn.Module = PairLossModule(run.model, loss_fn)
    if run.context.enabled:
        # towers built from hub classes may carry parts the score never uses (e.g. XLM-R's pooler)
        trainable = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[run.context.local_rank] if run.context.device.type == "cuda" else None,
            find_unused_parameters=True,
        )
    return trainable


def _collated(run: _Run, batches: list[list[int]], start: int) -> Iterator[tuple[int, Any]]:
    """(index, this rank's collated batch or None when its shard is empty) for ``batches[start:]``.

    With ``data_workers`` the images are decoded and resized in DataLoader worker processes
    (pinned memory on CUDA) while the model trains; the batches are the same either way.
    """
    shards = [(index, run.context.shard(batches[index])) for index in range(start, len(batches))]
    if run.config.data_workers == 0:
        for index, shard in shards:
            yield index, run.collate([run.dataset[i] for i in shard]) if shard else None
        return
    loader = torch.utils.data.DataLoader(
        run.dataset, batch_sampler=[shard for _, shard in shards if shard], collate_fn=run.collate,
        num_workers=run.config.data_workers, pin_memory=run.context.device.type == "cuda",
        generator=torch.Generator().manual_seed(run.config.seed),  # worker seeds must not draw on the training RNG
    )
    loaded = iter(loader)
    for index, shard in shards:
        yield index, next(loaded) if shard else None


def _train_epoch(run: _Run, trainable: nn.Module, progress: _Progress, logger: MetricsLogger | None,
                 on_step: Callable[[int], None] | None, throughput: _Throughput) -> bool:
    """Steps through the rest of the current epoch; False when ``total_steps`` cut it short."""
    run.sampler.set_epoch(progress.epoch)
    batches = run.sampler.batches()
    for index, collated in _collated(run, batches, progress.batch_in_epoch):
        if collated is not None:
            batch = collated.to(run.context.device)
            result = _optimizer_step(trainable, batch, run.config, run.context)
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
            progress.step += 1
            throughput.pairs += len(batches[index])
            if run.context.is_main and logger is not None:
                metrics = result.loss.log_values()
                metrics["lr/heads"] = run.scheduler.get_last_lr()[0]
                metrics["throughput/pairs_per_s"] = throughput.rate()
                logger.log_metrics(metrics, progress.step)
            if on_step is not None:
                on_step(progress.step)
            if progress.step % run.config.checkpoint_every == 0:
                _checkpoint(run, progress, progress.epoch, index + 1)
        if progress.step >= run.total_steps and index + 1 < len(batches):
            return False
    return True


def _end_of_epoch(run: _Run, progress: _Progress, val_pairs: Sequence, logger: MetricsLogger | None) -> None:
    """Validate, keep the best weights, count down the early-stopping patience, checkpoint."""
    progress.epoch, progress.batch_in_epoch = progress.epoch + 1, 0
    accuracy = validation_accuracy(run.model, val_pairs, run.config.loss.tie_threshold, run.context.device, run.images)
    if accuracy:
        metrics = {f"val_accuracy/{d}": a for d, a in accuracy.items()}
        progress.history.append({"epoch": progress.epoch, "step": progress.step, **metrics})
        if run.context.is_main and logger is not None:
            logger.log_metrics(metrics, progress.step)
        headline = float(np.nanmean(list(accuracy.values())))  # every head counts, not only total
        if headline > progress.best:
            progress.best, progress.patience = headline, run.config.early_stopping_patience
            if run.context.is_main:
                run.model.save_pretrained(run.run_dir / BEST_DIR)
        else:
            progress.patience -= 1
            progress.stopped_early = progress.patience <= 0
    _checkpoint(run, progress, progress.epoch, 0)


@dataclass
class _Throughput:
    pairs: int = 0
    started: float = field(default_factory=time.perf_counter)

    def rate(self) -> float:
        return self.pairs / max(time.perf_counter() - self.started, 1e-9)


def _save_final(run: _Run, prompt_lengths: dict[str, PromptLengths]) -> Path:
    """The best validated weights (else the last) as ``model/``, with the training config beside them."""
    final_dir = run.run_dir / MODEL_DIR
    if run.context.is_main:
        model = run.model
        if (run.run_dir / BEST_DIR / "model.safetensors").exists():
            model = AestheticScorer.from_pretrained(run.run_dir / BEST_DIR).to(run.context.device)
        model.save_pretrained(final_dir)
        save_training_config(final_dir, run.config, {split: found.summary() for split, found in prompt_lengths.items()})
        run.model = model
    barrier(run.context)
    return final_dir


def train(
    config: TrainConfig,
    train_pairs: Sequence,
    val_pairs: Sequence,
    runs_dir: Path,
    logger: MetricsLogger | None = None,
    context: DistContext | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train (or resume) the student on teacher pairs; returns where the model was saved."""
    if not train_pairs:
        raise ValueError("no training pairs: materialize preference_pairs first (train split, consistent verdicts)")
    context = context or init_distributed()
    run_dir = Path(runs_dir) / config.fingerprint(data_fingerprint(train_pairs))
    with _run_lock(run_dir, context):
        return _train_run(config, train_pairs, val_pairs, run_dir, logger, context, on_step)


@contextlib.contextmanager
def _run_lock(run_dir: Path, context: DistContext) -> Iterator[None]:
    """The run folder for this training alone. A second training of the same run (the UI and the command line
    launching the same config at once) would resume from the same checkpoint and overwrite the first's; it stops
    here instead. The main rank holds it: when it stops, torchrun stops the other ranks of its job."""
    if not context.is_main:
        yield
        return
    lock = run_dir / RUN_LOCK
    busy = f"run {run_dir.name} (same config and train split) is being trained by another process; wait for it to finish (lock: {lock})"
    with held_exclusively(lock, lambda: TrainingBusyError(busy)):
        yield


def _train_run(
    config: TrainConfig, train_pairs: Sequence, val_pairs: Sequence, run_dir: Path, logger: MetricsLogger | None,
    context: DistContext, on_step: Callable[[int], None] | None,
) -> TrainResult:
    seed_everything(config.seed)
    run = _build_run(config, train_pairs, run_dir, context)
    prompt_lengths = _check_prompt_lengths(run, {"train": train_pairs, "val": val_pairs}, logger)
    progress = _resume(run)
    resumed_from = progress.step
    trainable = _wrap_for_ddp(run, CombinedRankingLoss(run.model.dimensions, config.loss))
    throughput = _Throughput()
    run.model.train()
    while progress.epoch < config.epochs and progress.step < run.total_steps and not progress.stopped_early:
        if not _train_epoch(run, trainable, progress, logger, on_step, throughput):
            break
        _end_of_epoch(run, progress, val_pairs, logger)
    final_dir = _save_final(run, prompt_lengths)
    final_val = (
        validation_accuracy(run.model, val_pairs, config.loss.tie_threshold, context.device, run.images) if context.is_main else {}
    )
    return TrainResult(
        run_key=run_dir.name, model_dir=final_dir, steps=progress.step, resumed_from_step=resumed_from,
        epochs_completed=progress.epoch, stopped_early=progress.stopped_early, val_accuracy=final_val,
        padded_fraction=run.sampler.padded_fraction(), pairs_per_second=throughput.rate(), history=progress.history,
        prompt_lengths=prompt_lengths,
    )
