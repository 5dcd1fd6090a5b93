"""The student model: aspect-true ViT + multilingual text tower + one head per dimension.

See ARCHITECTURE §4-5. Entry points: ``named_config`` (model configs), ``AestheticScorer``
(the nn.Module, ``save_pretrained``/``from_pretrained``), ``CombinedRankingLoss``,
``RatioBucketSampler`` and the pair training step in ``train_step``. Inference for
users lives in ``aesthetic_platform.scoring.Scorer``.
"""

from aesthetic_platform.model.batching import ImageBatch, RatioBucketSampler, collate_images, patch_grid
from aesthetic_platform.model.config import MODEL_CONFIGS, ModelConfig, named_config
from aesthetic_platform.model.loss import CombinedRankingLoss, RankingLossConfig, RankingLossOutput
from aesthetic_platform.model.scorer_model import AestheticScorer

__all__ = [
    "MODEL_CONFIGS",
    "AestheticScorer",
    "CombinedRankingLoss",
    "ImageBatch",
    "ModelConfig",
    "RankingLossConfig",
    "RankingLossOutput",
    "RatioBucketSampler",
    "collate_images",
    "named_config",
    "patch_grid",
]
