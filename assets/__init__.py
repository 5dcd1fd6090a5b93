"""Dagster assets, one module per domain group."""

from assets.data_engine import candidate_images, prompts
from assets.judging import judge_calibration, judgments, preference_pairs

ALL_ASSETS = [prompts, candidate_images]
ALL_ASSETS += [judgments, judge_calibration, preference_pairs]

__all__ = ["ALL_ASSETS", "candidate_images", "judge_calibration", "judgments", "preference_pairs", "prompts"]
