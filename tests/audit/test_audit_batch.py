"""Auditing a batch, and what judging must leave out (excluded_candidates)."""

from __future__ import annotations

import json

import pytest

from aesthetic_platform.audit import (
    NO_IMAGE_MODEL,
    AuditConfig,
    ImageVerdict,
    audit_batch,
    check_flagged_share,
    earlier_shares,
    excluded_candidates,
    load_audit,
)
from aesthetic_platform.generation import load_manifest
from aesthetic_platform.schemas import CONTENT_AUDIT
from tests.audit.conftest import client_for, make_audit_batch


def _by_prompt(rows):
    return {r.item_id: r for r in rows if r.kind == "prompt"}


def test_rules_only_audit_flags_prompts_and_says_images_had_no_model(data_root):
    specs = make_audit_batch(data_root, "b1")
    run = audit_batch(data_root, "b1", AuditConfig())
    prompts = _by_prompt(run.rows)
    gory = prompts[specs[2].prompt_id]
    assert gory.status == "flagged" and gory.categories == ["violence"] and gory.auditor == "rules"
    assert set(gory.rule_hits) == {"violence:gory", "violence:beheading"} and "beheading" in gory.reason
    assert [prompts[s.prompt_id].status for s in specs] == ["passed", "passed", "flagged", "passed"]  # no endpoint: trigger word passes
    images = [r for r in run.rows if r.kind == "image"]
    assert len(images) == 8 and all(r.status == "passed" and r.auditor == "none" and r.reason == NO_IMAGE_MODEL for r in images)
    assert run.flagged_share == pytest.approx(1 / 12)
    assert CONTENT_AUDIT.read(data_root.table("content_audit", "b1")).height == 12

    excluded = excluded_candidates(data_root, "b1", "skip")
    gory_images = {c.image_id for c in load_manifest(data_root, "b1") if c.prompt_id == specs[2].prompt_id}
    assert set(excluded) == gory_images and all("prompt flagged [violence]" in r for r in excluded.values())


def test_moderation_flags_and_records_scores(data_root, moderation_server):
    specs = make_audit_batch(data_root, "b1")
    run = audit_batch(data_root, "b1", AuditConfig(moderation=True), client_for(moderation_server))
    prompts = _by_prompt(run.rows)
    trigger = prompts[specs[3].prompt_id]
    assert trigger.status == "flagged" and trigger.categories == ["violence"]
    assert trigger.auditor == "rules+moderation:omni-moderation-latest"
    assert json.loads(trigger.scores_json)["violence"] == 0.93 and trigger.attempts == 1
    assert run.moderation_calls == 1 and moderation_server.state.requests == 1  # all four prompts in one request
    assert len(excluded_candidates(data_root, "b1")) == 4


def test_a_moderation_outage_marks_items_unaudited_and_the_policy_decides(data_root, moderation_server):
    specs = make_audit_batch(data_root, "b1")
    moderation_server.state.inject("server_error", times=None)
    run = audit_batch(data_root, "b1", AuditConfig(moderation=True, moderate_images=True), client_for(moderation_server, max_attempts=2))
    prompts = _by_prompt(run.rows)
    assert prompts[specs[2].prompt_id].status == "flagged"  # the rules still flag what they know
    for spec in (specs[0], specs[1], specs[3]):
        row = prompts[spec.prompt_id]
        assert row.status == "unaudited" and row.error and row.attempts == 2 and row.categories == []
    images = [r for r in run.rows if r.kind == "image"]
    assert all(r.status == "unaudited" and "moderation" in r.auditor and r.error for r in images)

    skip = excluded_candidates(data_root, "b1", "skip")
    include = excluded_candidates(data_root, "b1", "include")
    assert excluded_candidates(data_root, "b1") == skip and {r.unaudited_policy for r in run.rows} == {"skip"}
    assert len(skip) == 8 and any("unaudited (policy skip)" in r for r in skip.values())
    flagged_images = {c.image_id for c in load_manifest(data_root, "b1") if c.prompt_id == specs[2].prompt_id}
    assert set(include) == flagged_images  # 'include' judges unaudited items, never flagged ones

    # the endpoint is back: a re-run reuses what was audited and asks again only for the unaudited items
    moderation_server.state.faults.clear()
    before = moderation_server.state.requests
    again = audit_batch(data_root, "b1", AuditConfig(moderation=True, moderate_images=True), client_for(moderation_server))
    assert again.count("unaudited") == 0 and again.reused == 1  # the rule-flagged prompt
    assert moderation_server.state.requests - before == 1 + 8  # one text request (3 prompts) + one per image
    assert len(moderation_server.state.inputs[before]) == 3
    include = AuditConfig(moderation=True, moderate_images=True, unaudited_policy="include")
    third = audit_batch(data_root, "b1", include, client_for(moderation_server))
    assert third.reused == 12 and third.moderation_calls == 0  # the policy is not part of what was audited
    assert {r.unaudited_policy for r in load_audit(data_root, "b1")} == {"include"}


def test_missing_or_stale_audits_are_not_passed(data_root):
    make_audit_batch(data_root, "b1")
    with pytest.raises(FileNotFoundError, match="materialize content_audit"):
        excluded_candidates(data_root, "b1")
    audit_batch(data_root, "b1", AuditConfig())
    rows = load_audit(data_root, "b1")
    stale = [r.model_copy(update={"content_hash": "0" * 64}) if r.kind == "image" and i == 4 else r for i, r in enumerate(rows)]
    CONTENT_AUDIT.write(stale, data_root.table("content_audit", "b1"))
    skipped = excluded_candidates(data_root, "b1", "skip")
    assert any("not audited" in r for r in skipped.values())
    assert excluded_candidates(data_root, "b1") == skipped  # the recorded policy: AuditConfig's default, 'skip'
    assert not any("not audited" in r for r in excluded_candidates(data_root, "b1", "include").values())
    CONTENT_AUDIT.write([r.model_copy(update={"unaudited_policy": "include"}) for r in stale], data_root.table("content_audit", "b1"))
    assert not any("not audited" in r for r in excluded_candidates(data_root, "b1").values())
    with pytest.raises(ValueError, match="policy"):
        excluded_candidates(data_root, "b1", "maybe")


class _RedFlagger:
    def __init__(self, fail: bool = False, name: str = "image:test-safety") -> None:
        self.fail, self.name = fail, name

    def classify(self, paths):
        if self.fail:
            raise RuntimeError("classifier weights missing")
        return [ImageVerdict(flagged=i == 0, categories=["sexual"] if i == 0 else [], scores={"sexual": 0.9 if i == 0 else 0.1})
                for i, _ in enumerate(paths)]


def test_the_image_classifier_plug_point(data_root):
    make_audit_batch(data_root, "b1")
    run = audit_batch(data_root, "b1", AuditConfig(), image_classifier=_RedFlagger())
    images = [r for r in run.rows if r.kind == "image"]
    assert images[0].status == "flagged" and images[0].categories == ["sexual"] and images[0].auditor == "image:test-safety"
    assert all(r.status == "passed" and r.reason == "" for r in images[1:])
    assert "image flagged [sexual]" in excluded_candidates(data_root, "b1")[images[0].item_id]
    again = audit_batch(data_root, "b1", AuditConfig(), image_classifier=_RedFlagger(fail=True))
    assert again.reused == 12  # same classifier, same bytes: the verdicts are reused, the classifier is not asked
    broken = audit_batch(data_root, "b1", AuditConfig(), image_classifier=_RedFlagger(fail=True, name="image:test-safety-v2"))
    assert all(r.status == "unaudited" and "classifier weights missing" in r.error for r in broken.rows if r.kind == "image")


def test_flagged_share_check_absolute_and_jump():
    config = AuditConfig(max_flagged_share=0.2, max_flagged_jump=0.1)
    assert check_flagged_share(0.15, [], config).passed  # no history: only the absolute threshold
    assert not check_flagged_share(0.25, [], config).passed
    jumped = check_flagged_share(0.15, [0.0, 0.02], config)  # under 0.2, but 0.14 above the mean of earlier batches
    assert not jumped.passed and jumped.baseline == pytest.approx(0.01) and jumped.jump == pytest.approx(0.14)
    assert check_flagged_share(0.15, [0.1], config).passed


def test_earlier_shares_read_the_other_batches(data_root):
    make_audit_batch(data_root, "b1", ["A calm river poster", "A gory poster"], per_prompt=2)
    make_audit_batch(data_root, "b2", ["A calm river poster", "A bright orchard poster"], per_prompt=2)
    audit_batch(data_root, "b1", AuditConfig())
    audit_batch(data_root, "b2", AuditConfig())
    assert earlier_shares(data_root, ["b2"]) == [pytest.approx(1 / 6)]
    assert sorted(earlier_shares(data_root, [])) == [0.0, pytest.approx(1 / 6)]
