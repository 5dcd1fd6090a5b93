"""The pairwise judge as a Dagster resource: the pixel heuristic or any OpenAI-compatible VLM."""

import os

import dagster as dg

from aesthetic_platform.judging import Judge, JudgeConfig, build_judge
from aesthetic_platform.resources.profile import DEFAULT_JUDGE, current_profile

JUDGE_ENV = "AESTHETIC_JUDGE"


class JudgeResource(dg.ConfigurableResource, JudgeConfig):
    """``JudgeConfig`` as a resource (same fields, same defaults); its model and settings key the verdict cache."""

    def build(self) -> Judge:
        return build_judge(self)


def default_kind_for_profile() -> str:
    """The judge kind the current profile starts from (before ``AESTHETIC_JUDGE``)."""
    return DEFAULT_JUDGE[current_profile()]


def judge_from_env(default_kind: str) -> JudgeResource:
    """``AESTHETIC_JUDGE=openai|heuristic``; endpoint and model come from ``AESTHETIC_JUDGE_BASE_URL`` / ``_MODEL``
    when the judge is built, and the key stays an env var."""
    kind = os.environ.get(JUDGE_ENV, default_kind)
    if kind not in ("heuristic", "openai"):
        raise ValueError(f"{JUDGE_ENV}={kind!r} is not one of ('heuristic', 'openai')")
    settings: dict = {"kind": kind}
    if kind == "openai" and os.environ.get("OPENAI_API_KEY"):
        settings["api_key"] = dg.EnvVar("OPENAI_API_KEY")
    return JudgeResource(**settings)
