"""Training the student on teacher pairs: config, loop, torchrun entry, MLflow logging."""

from aesthetic_platform.training.config import TrainConfig
from aesthetic_platform.training.data import PairSplits, load_pair_splits
from aesthetic_platform.training.loop import TrainResult, model_config_for, train

__all__ = ["PairSplits", "TrainConfig", "TrainResult", "load_pair_splits", "model_config_for", "train"]
