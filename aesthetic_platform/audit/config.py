"""Content-audit settings: rules, the moderation endpoint's use, and the policy for unaudited items."""

from __future__ import annotations

from pydantic import BaseModel, Field

from aesthetic_platform.schemas import UnauditedPolicy

DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


class AuditConfig(BaseModel):
    """How prompts and candidate images are screened before judging.

    ``unaudited_policy`` is the documented choice for a moderation outage: the audit
    never marks an item ``passed`` when its auditor failed; it marks it ``unaudited``
    with the error, records this policy with the batch's audit, and judging then
    ``skip``s it (default) or ``include``s it (``excluded_candidates`` reads the
    recorded policy unless the caller names one).
    """

    rules: bool = Field(default=True, description="Screen prompts with the term rules (offline, no endpoint).")
    terms_file: str = Field(default="", description="JSON {category: [terms]} replacing the built-in Chinese/English terms; '' = built-in.")
    extra_terms: dict[str, list[str]] = Field(default_factory=dict, description="More terms per category, added to the list in use.")
    allow_terms: list[str] = Field(default_factory=list, description="Phrases that never flag (e.g. 'blood orange').")
    moderation: bool = Field(default=False, description="Also send prompts to the OpenAI-compatible moderation endpoint.")
    moderate_images: bool = Field(default=False, description="Also send candidate images to the endpoint (needs an omni moderation model).")
    moderation_batch: int = Field(default=32, ge=1, le=256, description="Prompts per moderation request.")
    image_classifier: str = Field(
        default="",
        description="'module:factory' returning an ImageSafetyClassifier; '' = the registered classifier of image_safety_task, if any.",
    )
    image_safety_task: str = Field(
        default="safe",
        description="With image_classifier '', the newest registered embedding classifier of this task "
        "(embedding-classifier-<task>, after the MLflow name prefix) screens the images; none registered = images pass "
        "and their rows say so; '' = never look.",
    )
    image_safety_reject: str = Field(default="no", description="The safety classifier's label that flags an image.")
    image_safety_threshold: float = Field(
        default=0.5, ge=0, le=1, description="P(image_safety_reject) at or above which an image is flagged."
    )
    score_thresholds: dict[str, float] = Field(
        default_factory=dict, description="Category -> score at or above which an item is flagged even when the endpoint did not flag it."
    )
    unaudited_policy: UnauditedPolicy = Field(
        default="skip", description="Items whose audit failed: 'skip' keeps them out of judging, 'include' judges them anyway."
    )
    max_flagged_share: float = Field(default=0.2, ge=0, le=1, description="The flagged-share check fails above this share of the items.")
    max_flagged_jump: float = Field(
        default=0.1, ge=0, le=1, description="The check also fails when the share rises more than this above the mean of earlier batches."
    )
