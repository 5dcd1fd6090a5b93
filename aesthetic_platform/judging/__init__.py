"""VLM judging (seed 000 Phase 1.1-1.2): judge prompt, judges, verdict cache, pairs, calibration."""

from aesthetic_platform.judging.base import ImageRef, Judge, JudgeRequest, Verdict
from aesthetic_platform.judging.cache import CacheKey, VerdictCache
from aesthetic_platform.judging.calibration import CalibrationReport, calibrate
from aesthetic_platform.judging.client import OpenAIJudge
from aesthetic_platform.judging.config import JudgeConfig
from aesthetic_platform.judging.dataset import PairDataset, SplitConfig, build_pair_dataset, write_pair_dataset
from aesthetic_platform.judging.heuristic import HeuristicJudge
from aesthetic_platform.judging.pairs import plan_pairs, split_for
from aesthetic_platform.judging.prompt import JudgePrompt, ScoreScale
from aesthetic_platform.judging.reply import JudgeReply, ReplyError, parse_reply
from aesthetic_platform.judging.run import (
    BatchJudging,
    JudgingConfig,
    failure_rate,
    judge_batch,
    judge_cache,
    judge_with_cache,
    judging_summary,
    load_judgments,
)

__all__ = [
    "BatchJudging",
    "CacheKey",
    "CalibrationReport",
    "HeuristicJudge",
    "ImageRef",
    "Judge",
    "JudgePrompt",
    "JudgeReply",
    "JudgeRequest",
    "JudgeConfig",
    "JudgingConfig",
    "OpenAIJudge",
        "PairDataset",
    "ReplyError",
    "ScoreScale",
    "SplitConfig",
    "Verdict",
    "VerdictCache",
    "build_judge",
    "build_pair_dataset",
    "calibrate",
    "failure_rate",
    "judge_batch",
    "judge_cache",
    "judge_with_cache",
    "judging_summary",
    "load_judgments",
    "parse_reply",
    "plan_pairs",
    "split_for",
    "write_pair_dataset",
]


def build_judge(config: JudgeConfig) -> Judge:
    """The judge a config names: the offline pixel heuristic or a VLM behind an OpenAI-compatible API."""
    if config.kind == "heuristic":
        return HeuristicJudge(tuple(config.dimensions), config.scale)
    return OpenAIJudge(config)
