"""Dagster assets, one module per domain group."""

from aesthetic_platform.assets.data_engine import candidate_images, prompts
from aesthetic_platform.assets.golden_noise import golden_noise_analysis, human_preferences
from aesthetic_platform.assets.judging import judge_calibration, judgments, preference_pairs
from aesthetic_platform.assets.training import aesthetic_model, eval_report

ALL_ASSETS = [prompts, candidate_images, judgments, judge_calibration, preference_pairs]
ALL_ASSETS += [human_preferences, golden_noise_analysis]
ALL_ASSETS += [aesthetic_model, eval_report]

__all__ = [
    "ALL_ASSETS",
    "aesthetic_model",
    "eval_report",
    "candidate_images",
    "golden_noise_analysis",
    "human_preferences",
    "judge_calibration",
    "judgments",
    "preference_pairs",
    "prompts",
]
