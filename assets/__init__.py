"""Dagster assets, one module per domain group."""

from assets.data_engine import candidate_images, prompts

ALL_ASSETS = [prompts, candidate_images]

__all__ = ["ALL_ASSETS", "candidate_images", "prompts"]
