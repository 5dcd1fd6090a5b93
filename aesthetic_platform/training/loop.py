"""The training loop: seeded, resumable, DDP-aware, with every sub-loss reported.

A run lives in a folder keyed by ``TrainConfig.fingerprint(data)``: the same config on
the same pairs finds its own ``checkpoint/state.pt`` and continues from that step (a
crash or a killed process loses at most ``checkpoint_every`` steps); anything else
starts fresh. The finished model is written with ``save_pretrained`` to ``model/``.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from aesthetic_platform.atomic import write_with
from aesthetic_platform.evaluation.predict import agreement, pair_logits, teacher_gaps
from aesthetic_platform.model.batching import RatioBucketSampler
from aesthetic_platform.model.config import ModelConfig, named_config
from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossConfig
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.model.train_step import PairCollator, PreferencePairDataset, pair_loss
from aesthetic_platform.training.config import TrainConfig
from aesthetic_platform.training.distributed import DistContext, barrier, init_distributed

CHECKPOINT_DIR = "checkpoint"
STATE_FILE = "state.pt"
MODEL_DIR = "model"
BEST_DIR = "best"


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

    def summary(self) -> dict[str, Any]:
        return {
            "run_key": self.run_key, "model_dir": str(self.model_dir), "steps": self.steps,
            "resumed_from_step": self.resumed_from_step, "epochs_completed": self.epochs_completed,
            "stopped_early": self.stopped_early, "val_accuracy": self.val_accuracy,
            "padded_fraction": self.padded_fraction, "pairs_per_second": self.pairs_per_second,
        }


class PairLossModule(nn.Module):
    """Model + loss behind one ``forward`` so DDP sees (and syncs) the whole step."""

    def __init__(self, model: AestheticScorer, loss_fn: CombinedRankingLoss) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):  # noqa: D401 - nn.Module protocol
        return pair_loss(self.model, batch, self.loss_fn)


def model_config_for(config: TrainConfig) -> ModelConfig:
    """The named model config with the training run's overrides applied."""
    base = named_config(config.model)
    image = base.image.model_dump()
    text = base.text.model_dump()
    if config.image_pretrained is not None:
        image["pretrained"] = config.image_pretrained
    if config.image_trainable_blocks is not None:
        image["trainable_blocks"] = config.image_trainable_blocks
    if config.patch_budget is not None:
        image["patch_budget"] = config.patch_budget
    if config.text_pretrained is not None:
        text.update({"pretrained": config.text_pretrained, "architecture": None})
    if config.text_trainable_blocks is not None:
        text["trainable_blocks"] = config.text_trainable_blocks
    values = {**base.model_dump(), "dimensions": tuple(config.dimensions), "image": image, "text": text}
    if config.head_dropout is not None:
        values["head_dropout"] = config.head_dropout
    return ModelConfig.model_validate(values)


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


def validation_accuracy(model: AestheticScorer, pairs: Sequence, tie_threshold: float, device: torch.device) -> dict[str, float]:
    if not pairs:
        return {}
    winners, losers = pair_logits(model, pairs, device=device)
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
    result.loss.total.backward()
    torch.nn.utils.clip_grad_norm_(trainable.parameters(), config.grad_clip)
    return result


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
    run_key = config.fingerprint(data_fingerprint(train_pairs))
    run_dir = Path(runs_dir) / run_key
    state_path = run_dir / CHECKPOINT_DIR / STATE_FILE
    seed_everything(config.seed)

    model = AestheticScorer(model_config_for(config)).to(context.device)
    if config.tower_dropout is not None:
        set_tower_dropout(model, config.tower_dropout)
    model.set_gradient_checkpointing(config.gradient_checkpointing)
    loss_fn = CombinedRankingLoss(
        model.dimensions,
        RankingLossConfig(dimension_weights=config.loss_weights, tie_threshold=config.tie_threshold, margin_weighting=config.margin_weighting),
    )
    dataset = PreferencePairDataset(train_pairs, model)
    collate = PairCollator.for_model(model)
    sampler = RatioBucketSampler(dataset.item_grids(), batch_size=config.batch_size, shuffle=True, seed=config.seed)
    steps_per_epoch = len(sampler)
    total_steps = min(config.max_steps or steps_per_epoch * config.epochs, steps_per_epoch * config.epochs)
    optimizer = torch.optim.AdamW(model.param_groups(config.head_lr, config.tower_lr, config.weight_decay))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_with_warmup(config.warmup_steps, total_steps))

    step, epoch, batch_in_epoch, best, patience, history = 0, 0, 0, -1.0, config.early_stopping_patience, []
    if state_path.exists():
        state = torch.load(state_path, map_location=context.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, epoch, batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        best, patience, history = state["best"], state["patience"], state["history"]
        _restore_rng(state["rng"])
    resumed_from = step

    trainable: nn.Module = PairLossModule(model, loss_fn)
    if context.enabled:
        # towers built from hub classes may carry parts the score never uses (e.g. XLM-R's pooler)
        trainable = nn.parallel.DistributedDataParallel(
            trainable, device_ids=[context.local_rank] if context.device.type == "cuda" else None,
            find_unused_parameters=True,
        )

    def checkpoint(next_epoch: int, next_batch: int) -> None:
        if context.is_main:
            _save_state(state_path, {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "step": step, "epoch": next_epoch, "batch_in_epoch": next_batch, "best": best, "patience": patience,
                "history": history, "rng": _rng_state(), "run_key": run_key,
            })
        barrier(context)

    padded = sampler.padded_fraction()
    pairs_seen, started = 0, time.perf_counter()
    stopped_early = False
    model.train()
    while epoch < config.epochs and step < total_steps and not stopped_early:
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        completed = True
        for index in range(batch_in_epoch, len(batches)):
            shard = context.shard(batches[index])
            if shard:
                result = _optimizer_step(trainable, collate([dataset[i] for i in shard]).to(context.device), config, context)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                pairs_seen += len(batches[index])
                if context.is_main and logger is not None:
                    metrics = result.loss.log_values()
                    metrics["lr/heads"] = scheduler.get_last_lr()[0]
                    metrics["throughput/pairs_per_s"] = pairs_seen / max(time.perf_counter() - started, 1e-9)
                    logger.log_metrics(metrics, step)
                if on_step is not None:
                    on_step(step)
                if step % config.checkpoint_every == 0:
                    checkpoint(epoch, index + 1)
            if step >= total_steps and index + 1 < len(batches):
                completed = False
                break
        if not completed:
            break
        epoch, batch_in_epoch = epoch + 1, 0
        accuracy = validation_accuracy(model, val_pairs, config.tie_threshold, context.device)
        if accuracy:
            history.append({"epoch": epoch, "step": step, **{f"val_accuracy/{d}": a for d, a in accuracy.items()}})
            if context.is_main and logger is not None:
                logger.log_metrics({f"val_accuracy/{d}": a for d, a in accuracy.items()}, step)
            headline = float(np.nanmean(list(accuracy.values())))  # every head counts, not only total
            if headline > best:
                best, patience = headline, config.early_stopping_patience
                if context.is_main:
                    model.save_pretrained(run_dir / BEST_DIR)
            else:
                patience -= 1
                stopped_early = patience <= 0
        checkpoint(epoch, 0)

    final_dir = run_dir / MODEL_DIR
    if context.is_main:
        if (run_dir / BEST_DIR / "model.safetensors").exists():
            model = AestheticScorer.from_pretrained(run_dir / BEST_DIR)
        model.save_pretrained(final_dir)
    barrier(context)
    elapsed = max(time.perf_counter() - started, 1e-9)
    final_val = validation_accuracy(model.to(context.device), val_pairs, config.tie_threshold, context.device) if context.is_main else {}
    return TrainResult(
        run_key=run_key, model_dir=final_dir, steps=step, resumed_from_step=resumed_from, epochs_completed=epoch,
        stopped_early=stopped_early, val_accuracy=final_val, padded_fraction=padded,
        pairs_per_second=pairs_seen / elapsed, history=history,
    )
