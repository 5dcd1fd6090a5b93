"""Resources per environment, chosen in one place.

``AESTHETIC_PROFILE=local`` (default) runs everything on embedded defaults: no keys,
no GPU, no downloads. ``AESTHETIC_PROFILE=production`` switches to FLUX.1-schnell
through diffusers and reads endpoints and keys from the environment.
"""


import os
from typing import Any

import dagster as dg

from aesthetic_platform.resources.data_root import DataRootResource
from aesthetic_platform.resources.embeddings import EmbeddingStoreResource
from aesthetic_platform.resources.generation import ImageGeneratorResource
from aesthetic_platform.resources.judge import JudgeResource, judge_from_env
from aesthetic_platform.resources.llm import PromptLLMResource
from aesthetic_platform.resources.moderation import ModerationResource, moderation_for_profile
from aesthetic_platform.resources.profile import DEFAULT_JUDGE, current_profile
from aesthetic_platform.resources.tracking import MLflowResource

#: Read once at import: ``mlflow.set_tracking_uri`` later rewrites the variable in-process.
_USER_TRACKING_URI = os.environ.get("MLFLOW_TRACKING_URI", "")

__all__ = [
    "DataRootResource",
    "EmbeddingStoreResource",
    "ImageGeneratorResource",
    "JudgeResource",
    "MLflowResource",
    "ModerationResource",
    "PromptLLMResource",
    "current_profile",
    "resources_for",
]


def _training_resources() -> dict[str, Any]:
    """MLflow (SQLite under the data root unless MLFLOW_TRACKING_URI names a server; every name prefixed with
    AESTHETIC_MLFLOW_PREFIX, for data roots that share one) and the
    Pipes launcher; on Kubernetes swap the latter for ``dagster_k8s.PipesK8sClient``."""
    return {
        "mlflow_tracking": MLflowResource(
            tracking_uri=_USER_TRACKING_URI,
            name_prefix=os.environ.get("AESTHETIC_MLFLOW_PREFIX", ""),
            ui_url=os.environ.get("AESTHETIC_MLFLOW_UI", ""),  # empty: the tracking server's UI, else aesthetic ui's
        ),
        "pipes_subprocess_client": dg.PipesSubprocessClient(),
    }


def resources_for(profile: str | None = None) -> dict[str, Any]:
    profile = profile or current_profile()
    if profile == "production":
        return {
            "data_root": DataRootResource(),
            "embedding_store": EmbeddingStoreResource(),  # $AESTHETIC_DB_URL names the Postgres + pgvector store
            "image_generator": ImageGeneratorResource(generator="diffusers"),
            "prompt_llm": PromptLLMResource(api_key=dg.EnvVar("OPENAI_API_KEY")),
            "judge": judge_from_env(DEFAULT_JUDGE["production"]),
            "moderation": moderation_for_profile("production"),  # prompts and images; $AESTHETIC_MODERATION_BASE_URL or $OPENAI_BASE_URL
            **_training_resources(),
        }
    return {
        "data_root": DataRootResource(),
        "embedding_store": EmbeddingStoreResource(),  # SQLite under the data root unless $AESTHETIC_DB_URL is set
        "image_generator": ImageGeneratorResource(generator="poster"),
        "prompt_llm": PromptLLMResource(),
        "judge": judge_from_env(DEFAULT_JUDGE["local"]),
        "moderation": moderation_for_profile("local"),  # prompt rules only, unless the run config turns moderation on
        **_training_resources(),
    }
