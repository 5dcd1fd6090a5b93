"""Content audit before judging: prompt rules, an OpenAI-compatible moderation endpoint, an image plug point.

No Dagster here: ``assets/audit.py`` wraps :func:`audit_batch` as the ``content_audit``
asset (per ``prompt_batch``, between ``candidate_images`` and ``judgments``), and judging
leaves out what :func:`excluded_candidates` returns.
"""

from aesthetic_platform.lazy import lazy_exports

_EXPORTS = {
    "AuditConfig": "config",
    "AuditRun": "run",
    "DEFAULT_MODERATION_MODEL": "config",
    "ImageSafetyClassifier": "images",
    "ImageVerdict": "images",
    "ModerationClient": "moderation",
    "ModerationOutcome": "moderation",
    "NO_IMAGE_MODEL": "images",
    "RuleHit": "rules",
    "ShareCheck": "run",
    "TermRules": "rules",
    "UnauditedPolicy": "config",
    "audit_batch": "run",
    "builtin_terms": "rules",
    "check_flagged_share": "run",
    "earlier_shares": "run",
    "excluded_candidates": "run",
    "flagged_share": "run",
    "load_audit": "run",
    "load_image_classifier": "images",
    "normalize": "rules",
    "prompt_text": "run",
    "registered_safety_filter": "prejudge",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
