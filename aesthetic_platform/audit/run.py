"""Audit one ``prompt_batch`` before judging, and tell judging what to leave out.

``audit_batch`` writes ``tables/content_audit/<batch>.parquet``: one row per prompt and
one per candidate image, each ``passed``, ``flagged`` (with categories and the reason)
or ``unaudited`` (the auditor failed; the error is kept). Rows of unchanged content
audited under the same settings are reused, so a re-run only calls the endpoint for
what is new or was unaudited.

``excluded_candidates`` is what judging calls: the candidate images to leave out of
the batch's pairs, each with its reason — images whose prompt or own audit is
flagged, and, under ``unaudited_policy='skip'``, images whose prompt or own audit
failed or is missing from the table.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.audit.config import AuditConfig, UnauditedPolicy
from aesthetic_platform.audit.images import NO_IMAGE_MODEL, ImageSafetyClassifier
from aesthetic_platform.audit.moderation import ModerationClient, ModerationOutcome
from aesthetic_platform.audit.rules import RuleHit, TermRules
from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import CONTENT_AUDIT, AuditStatus, CandidateImage, ContentAudit, PromptSpec

TABLE = "content_audit"


def prompt_text(spec: PromptSpec) -> str:
    """What is screened of a prompt: its text, and its slogan when the text does not already hold it."""
    return spec.text if not spec.slogan or spec.slogan in spec.text else f"{spec.text}\n{spec.slogan}"


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def combine_verdict(hits: list[RuleHit], outcome: ModerationOutcome | None) -> tuple[AuditStatus, list[str], str, str]:
    """(status, categories, reason, error) from the rule hits and the moderation outcome."""
    categories = sorted({h.category for h in hits} | set(outcome.categories if outcome and outcome.ok else []))
    reasons = []
    if hits:
        reasons.append("rule terms: " + ", ".join(f"{h.term!r} ({h.category})" for h in hits))
    if outcome is not None and outcome.ok and outcome.flagged:
        reasons.append("moderation flagged: " + ", ".join(outcome.categories or ["(no category)"]))
    error = outcome.error if outcome is not None else ""
    if categories or reasons:
        return "flagged", categories, "; ".join(reasons), error
    if error:
        return "unaudited", [], "", error
    return "passed", [], "", ""


@dataclass(frozen=True)
class AuditRun:
    batch: str
    rows: list[ContentAudit]
    path: Path
    moderation_calls: int
    reused: int

    def count(self, status: str, kind: str | None = None) -> int:
        return sum(r.status == status and (kind is None or r.kind == kind) for r in self.rows)

    @property
    def flagged_share(self) -> float:
        return flagged_share(self.rows)


def flagged_share(rows: Sequence[ContentAudit]) -> float:
    return sum(r.status == "flagged" for r in rows) / len(rows) if rows else 0.0


@dataclass(frozen=True)
class ShareCheck:
    passed: bool
    share: float
    baseline: float | None  # mean share of earlier batches; None when there are none
    jump: float


def check_flagged_share(share: float, earlier: Sequence[float], config: AuditConfig) -> ShareCheck:
    """Fails above ``max_flagged_share``, or more than ``max_flagged_jump`` above the mean of ``earlier`` batch shares."""
    baseline = sum(earlier) / len(earlier) if earlier else None
    jump = share - baseline if baseline is not None else 0.0
    return ShareCheck(share <= config.max_flagged_share and jump <= config.max_flagged_jump, share, baseline, jump)


def earlier_shares(root: DataRoot, exclude: Sequence[str]) -> list[float]:
    """Flagged share of every audited batch not in ``exclude``."""
    shares = []
    for path in root.batch_tables(TABLE):
        if path.stem not in exclude and (rows := load_audit(root, path.stem)):
            shares.append(flagged_share(rows))
    return shares


def _config_hash(config: AuditConfig, rules: TermRules | None, moderation: ModerationClient | None, classifier: str) -> str:
    settings = {
        "rules": rules.fingerprint() if rules else None,
        "moderation": moderation.fingerprint() if moderation and config.moderation else None,
        "moderate_images": moderation.fingerprint() if moderation and config.moderate_images else None,
        "image_classifier": classifier,
    }
    return _hash(json.dumps(settings, sort_keys=True, ensure_ascii=False))[:16]


def load_audit(root: DataRoot, batch: str) -> list[ContentAudit]:
    path = root.table(TABLE, batch)
    if not path.exists():
        raise FileNotFoundError(f"batch {batch!r} has no content audit at {path}; materialize content_audit first")
    return CONTENT_AUDIT.rows(CONTENT_AUDIT.read(path))


def audit_batch(
    root: DataRoot,
    batch: str,
    config: AuditConfig = AuditConfig(),
    moderation: ModerationClient | None = None,
    image_classifier: ImageSafetyClassifier | None = None,
) -> AuditRun:
    """Screen the batch's prompts and candidate images and write its content_audit table."""
    from aesthetic_platform.generation import load_manifest  # deferred: generation loads diffusers
    from aesthetic_platform.prompts import load_prompts

    if (config.moderation or config.moderate_images) and moderation is None:
        raise ValueError("the audit config asks for the moderation endpoint but no moderation client was given")
    prompts = load_prompts(root, batch)
    candidates = load_manifest(root, batch)
    if not candidates:
        raise FileNotFoundError(f"batch {batch!r} has no candidate images; materialize candidate_images first")
    rules = TermRules.from_config(config) if config.rules else None
    classifier_name = image_classifier.name if image_classifier is not None else ""
    classifier_key = str(getattr(image_classifier, "fingerprint", classifier_name))  # name, plus label and threshold where known
    config_hash = _config_hash(config, rules, moderation, classifier_key)
    previous: dict[tuple[str, str], ContentAudit] = {}
    if root.table(TABLE, batch).exists():
        previous = {(r.kind, r.item_id): r for r in load_audit(root, batch)}
    now = dt.datetime.now(dt.UTC)
    calls = 0

    def reusable(kind: str, item_id: str, content_hash: str) -> ContentAudit | None:
        old = previous.get((kind, item_id))
        if old and old.content_hash == content_hash and old.config_hash == config_hash and old.status != "unaudited":
            return old.model_copy(update={"unaudited_policy": config.unaudited_policy})
        return None

    # --- prompts ------------------------------------------------------------------------
    rows: dict[tuple[str, str], ContentAudit] = {}
    todo = []
    for spec in prompts:
        text = prompt_text(spec)
        if (old := reusable("prompt", spec.prompt_id, _hash(text))) is not None:
            rows[("prompt", spec.prompt_id)] = old
        else:
            todo.append((spec, text))
    outcomes: list[ModerationOutcome | None] = [None] * len(todo)
    if config.moderation and moderation is not None:
        for start in range(0, len(todo), config.moderation_batch):
            chunk = todo[start : start + config.moderation_batch]
            outcomes[start : start + len(chunk)] = moderation.texts([text for _, text in chunk])
            calls += 1
    for (spec, text), outcome in zip(todo, outcomes, strict=True):
        hits = rules.screen(text) if rules else []
        status, categories, reason, error = combine_verdict(hits, outcome)
        auditors = (["rules"] if rules is not None else []) + ([moderation.name] if moderation is not None and outcome is not None else [])
        auditor = "+".join(auditors)
        rows[("prompt", spec.prompt_id)] = ContentAudit(
            batch=batch, kind="prompt", item_id=spec.prompt_id, prompt_id=spec.prompt_id, content_hash=_hash(text), status=status,
            categories=categories, reason=reason, rule_hits=[h.label() for h in hits],
            scores_json=json.dumps(outcome.scores if outcome else {}, sort_keys=True), auditor=auditor or "none", error=error,
            attempts=outcome.attempts if outcome else 0, config_hash=config_hash, audited_at=now,
            unaudited_policy=config.unaudited_policy,
        )

    # --- images -------------------------------------------------------------------------
    image_todo = []
    for candidate in candidates:
        if (old := reusable("image", candidate.image_id, candidate.sha256)) is not None:
            rows[("image", candidate.image_id)] = old
        else:
            image_todo.append(candidate)
    verdicts = _classify(image_classifier, image_todo)
    for candidate, (verdict_error, verdict) in zip(image_todo, verdicts, strict=True):
        outcome = None
        if config.moderate_images and moderation is not None:
            outcome = moderation.image(candidate.path)
            calls += 1
        rows[("image", candidate.image_id)] = _image_row(
            batch, candidate, verdict, verdict_error, classifier_name, outcome, moderation, config_hash, now
        ).model_copy(update={"unaudited_policy": config.unaudited_policy})
    ordered = [rows[("prompt", p.prompt_id)] for p in prompts] + [rows[("image", c.image_id)] for c in candidates]
    path = CONTENT_AUDIT.write(ordered, root.table(TABLE, batch))
    reused = sum(r.audited_at != now for r in ordered)
    return AuditRun(batch, ordered, path, calls, reused)


def _classify(classifier: ImageSafetyClassifier | None, candidates: list[CandidateImage]) -> list[tuple[str, object | None]]:
    if classifier is None or not candidates:
        return [("", None)] * len(candidates)
    try:
        verdicts = classifier.classify([c.path for c in candidates])
        if len(verdicts) != len(candidates):
            raise ValueError(f"{classifier.name} returned {len(verdicts)} verdicts for {len(candidates)} images")
    except Exception as exc:  # noqa: BLE001 - a failing classifier leaves the images unaudited, with the error
        return [(f"{type(exc).__name__}: {exc}"[:500], None)] * len(candidates)
    return [("", v) for v in verdicts]


def _image_row(
    batch: str, candidate: CandidateImage, verdict, verdict_error: str, classifier_name: str, outcome: ModerationOutcome | None,
    moderation: ModerationClient | None, config_hash: str, now: dt.datetime,
) -> ContentAudit:
    auditors = [classifier_name] if classifier_name else []
    if outcome is not None and moderation is not None:
        auditors.append(moderation.name)
    categories = set(verdict.categories) if verdict is not None and verdict.flagged else set()
    reasons = []
    if verdict is not None and verdict.flagged:
        reasons.append(f"{classifier_name} flagged: " + ", ".join(sorted(categories) or ["(no category)"]))
    scores = dict(verdict.scores) if verdict is not None else {}
    errors = [verdict_error] if verdict_error else []
    if outcome is not None:
        if outcome.ok and outcome.flagged:
            categories |= set(outcome.categories)
            reasons.append("moderation flagged: " + ", ".join(outcome.categories or ["(no category)"]))
        scores.update({f"moderation/{k}": v for k, v in outcome.scores.items()})
        if outcome.error:
            errors.append(outcome.error)
    status: AuditStatus
    if reasons:
        status = "flagged"
    elif errors:
        status = "unaudited"
    else:
        status = "passed"
    return ContentAudit(
        batch=batch, kind="image", item_id=candidate.image_id, prompt_id=candidate.prompt_id, content_hash=candidate.sha256, status=status,
        categories=sorted(categories), reason="; ".join(reasons) or ("" if auditors else NO_IMAGE_MODEL), rule_hits=[],
        scores_json=json.dumps(scores, sort_keys=True), auditor="+".join(auditors) or "none", error="; ".join(errors),
        attempts=outcome.attempts if outcome else 0, config_hash=config_hash, audited_at=now,
    )


def excluded_candidates(root: DataRoot, batch: str, policy: UnauditedPolicy | None = None) -> dict[str, str]:
    """``{image_id: reason}`` of the batch's candidate images that judging must leave out.

    Flagged prompts and images are always excluded. Unaudited ones (the auditor failed),
    and candidates the audit table does not cover (or covers for other bytes), are
    excluded under ``policy='skip'`` and judged under ``policy='include'``; ``None``
    applies the policy recorded with the batch's audit (``AuditConfig.unaudited_policy``,
    'skip' if its rows disagree). Raises ``FileNotFoundError`` when the batch has no
    audit at all: judging never proceeds as if content had been screened when it was not.
    """
    from aesthetic_platform.generation import load_manifest  # deferred: generation loads diffusers

    audit = load_audit(root, batch)
    if policy is None:
        recorded = {r.unaudited_policy for r in audit}
        policy = recorded.pop() if len(recorded) == 1 else "skip"
    if policy not in ("skip", "include"):
        raise ValueError(f"unaudited policy must be 'skip' or 'include', not {policy!r}")
    prompts = {r.item_id: r for r in audit if r.kind == "prompt"}
    images = {r.item_id: r for r in audit if r.kind == "image"}
    excluded: dict[str, str] = {}
    for candidate in load_manifest(root, batch):
        reasons = []
        for label, row, expected_hash in (
            ("prompt", prompts.get(candidate.prompt_id), None),
            ("image", images.get(candidate.image_id), candidate.sha256),
        ):
            if row is None or (expected_hash is not None and row.content_hash != expected_hash):
                if policy == "skip":
                    reasons.append(f"{label} not audited (no content_audit row for these bytes; re-materialize content_audit)")
            elif row.status == "flagged":
                reasons.append(f"{label} flagged [{', '.join(row.categories) or 'unspecified'}]: {row.reason}")
            elif row.status == "unaudited" and policy == "skip":
                reasons.append(f"{label} unaudited (policy skip): {row.error}")
        if reasons:
            excluded[candidate.image_id] = "; ".join(reasons)
    return excluded
