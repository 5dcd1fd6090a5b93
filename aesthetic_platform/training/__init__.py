"""Training the student on teacher pairs: config, loop, torchrun entry."""

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.training.config import ModelOverrides, OptimizerConfig, TrainConfig, load_training_config
from aesthetic_platform.training.data import PairSplits, held_out_prompts, load_pair_splits
from aesthetic_platform.training.loop import MetricsLogger, TrainResult, train

__all__ = [
    "ModelOverrides",
    "OptimizerConfig",
    "PairSplits",
    "TrainConfig",
    "TrainResult",
    "load_pair_splits",
    "load_training_config",
    "train",
    "train_from_root",
]


def train_from_root(root: DataRoot, config: TrainConfig, logger: MetricsLogger | None = None) -> TrainResult:
    """Train on the data root's pairs; the frozen evaluation set's prompts never train."""
    splits = load_pair_splits(root.table("preference_pairs"), held_out_prompts(root), root)
    return train(config, splits.train, splits.val, root.training_runs, logger=logger)
