"""Dagster assets, one module per domain group."""

from aesthetic_platform.assets.audit import content_audit
from aesthetic_platform.assets.character_extensions import (
    CHARACTER_EXTENSION_ASSETS,
    character_fusion,
    character_generator,
    character_prototypes,
)
from aesthetic_platform.assets.characters import CHARACTER_ASSETS, character_classifier, character_dataset, character_student
from aesthetic_platform.assets.data_engine import candidate_images, prompts
from aesthetic_platform.assets.embeddings import (
    embedding_classifier,
    image_embeddings,
    label_review_queue,
    label_snapshot,
    prompt_embeddings,
)
from aesthetic_platform.assets.golden_noise import golden_noise_analysis, human_preferences
from aesthetic_platform.assets.ingest import reference_images
from aesthetic_platform.assets.judging import judge_calibration, judgments, preference_pairs
from aesthetic_platform.assets.lora import LORA_ASSETS, lora_captions, lora_crops, lora_dedup, lora_ingest, lora_package
from aesthetic_platform.assets.training import aesthetic_model, eval_report

ALL_ASSETS = [prompts, candidate_images, judgments, judge_calibration, preference_pairs]
ALL_ASSETS += [human_preferences, golden_noise_analysis]
ALL_ASSETS += [aesthetic_model, eval_report]
ALL_ASSETS += [content_audit, reference_images]
ALL_ASSETS += [image_embeddings, prompt_embeddings, label_snapshot, label_review_queue, embedding_classifier]
ALL_ASSETS += LORA_ASSETS
ALL_ASSETS += CHARACTER_ASSETS + CHARACTER_EXTENSION_ASSETS

__all__ = [
    "ALL_ASSETS",
    "content_audit",
    "reference_images",
    "aesthetic_model",
    "eval_report",
    "candidate_images",
    "character_classifier",
    "character_dataset",
    "character_fusion",
    "character_generator",
    "character_prototypes",
    "character_student",
    "golden_noise_analysis",
    "human_preferences",
    "embedding_classifier",
    "image_embeddings",
    "label_review_queue",
    "label_snapshot",
    "prompt_embeddings",
    "judge_calibration",
    "judgments",
    "lora_captions",
    "lora_crops",
    "lora_dedup",
    "lora_ingest",
    "lora_package",
    "preference_pairs",
    "prompts",
]
