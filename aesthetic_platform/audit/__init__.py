"""Content audit before judging: prompt rules, an OpenAI-compatible moderation endpoint, an image plug point.

No Dagster here: ``assets/audit.py`` wraps :func:`audit_batch` as the ``content_audit``
asset (per ``prompt_batch``, between ``candidate_images`` and ``judgments``), and judging
leaves out what :func:`excluded_candidates` returns.
"""

from aesthetic_platform.audit.config import DEFAULT_MODERATION_MODEL, AuditConfig, UnauditedPolicy
from aesthetic_platform.audit.images import NO_IMAGE_MODEL, ImageSafetyClassifier, ImageVerdict, load_image_classifier
from aesthetic_platform.audit.moderation import ModerationClient, ModerationOutcome
from aesthetic_platform.audit.rules import RuleHit, TermRules, builtin_terms, normalize
from aesthetic_platform.audit.run import (
    AuditRun,
    ShareCheck,
    audit_batch,
    check_flagged_share,
    earlier_shares,
    excluded_candidates,
    flagged_share,
    load_audit,
    prompt_text,
)

__all__ = [
    "DEFAULT_MODERATION_MODEL",
    "NO_IMAGE_MODEL",
    "AuditConfig",
    "AuditRun",
    "ImageSafetyClassifier",
    "ImageVerdict",
    "ModerationClient",
    "ModerationOutcome",
    "RuleHit",
    "ShareCheck",
    "TermRules",
    "UnauditedPolicy",
    "audit_batch",
    "builtin_terms",
    "check_flagged_share",
    "earlier_shares",
    "excluded_candidates",
    "flagged_share",
    "load_audit",
    "load_image_classifier",
    "normalize",
    "prompt_text",
]
