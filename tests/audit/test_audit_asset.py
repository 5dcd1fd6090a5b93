"""The content_audit asset: per-batch table, metadata, and the flagged-share check."""

from __future__ import annotations

import dagster as dg
import pytest

from aesthetic_platform.assets.audit import content_audit
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.audit import load_audit
from aesthetic_platform.resources import DataRootResource, MLflowResource
from aesthetic_platform.resources.moderation import ModerationResource
from tests.audit.conftest import TEXTS, make_audit_batch

GORY = ["A gory poster with a massacre", "斩首 主题海报", "A calm river poster", "A bloodbath festival flyer"]


def _run(instance, root, batch, config=None, moderation=None):
    return dg.materialize(
        [content_audit], partition_key=batch, instance=instance, raise_on_error=False,
        resources={"data_root": DataRootResource(home=str(root.root)), "moderation": moderation or ModerationResource(),
                   "mlflow_tracking": MLflowResource()},
        run_config={"ops": {"content_audit": {"config": config or {}}}},
    )


def _check(result) -> dg.AssetCheckEvaluation:
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_content_audit_asset_and_its_flagged_share_check(data_root):
    make_audit_batch(data_root, "b1", TEXTS)
    make_audit_batch(data_root, "b2", GORY)
    make_audit_batch(data_root, "b3", [*TEXTS[:2], GORY[0], "A bright orchard poster"])
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1", "b2", "b3"])
        first = _run(instance, data_root, "b1")
        assert first.success and _check(first).passed
        metadata = first.asset_materializations_for_node("content_audit")[0].metadata
        assert metadata["flagged"].value == 1 and metadata["categories"].value == {"violence": 1}
        assert metadata["auditors"].value == ["none", "rules"] and metadata["unaudited_policy"].value == "skip"
        assert len(load_audit(data_root, "b1")) == 12

        jumped = _run(instance, data_root, "b2")  # 3 of 4 prompts flagged: 3/12 of the items
        check = _check(jumped)
        assert not check.passed and check.metadata["flagged_share"].value == 0.25 and not jumped.success  # blocking
        assert len(load_audit(data_root, "b2")) == 12  # the table is written; the check stops what comes after

        # b3: 1 of 12 flagged, under the default 0.2 and below the mean of b1 and b2; the launchpad threshold decides
        strict = _run(instance, data_root, "b3", {"max_flagged_share": 0.05})
        assert not _check(strict).passed and _check(strict).metadata["earlier_batches_share"].value == (1 / 12 + 3 / 12) / 2


def test_moderation_resource_switches_the_endpoint_on(data_root, moderation_server):
    make_audit_batch(data_root, "b1", TEXTS)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        resource = ModerationResource(enabled=True, base_url=moderation_server.base_url, max_attempts=1)
        result = _run(instance, data_root, "b1", moderation=resource)
        assert result.success and moderation_server.state.requests == 1
        statuses = {r.status for r in load_audit(data_root, "b1") if r.kind == "prompt"}
        assert statuses == {"passed", "flagged"} and _check(result).metadata["flagged_share"].value == 2 / 12


def test_the_flagged_share_check_judges_each_batch_of_a_run(data_root):
    make_audit_batch(data_root, "b1", TEXTS)  # 1 of 12 items flagged
    make_audit_batch(data_root, "b2", GORY)  # 3 of 12: a jump; the two together (4 of 24) would pass
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1", "b2"])
        result = dg.materialize(
            [content_audit], instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "b1", "dagster/asset_partition_range_end": "b2"},
            resources={"data_root": DataRootResource(home=str(data_root.root)), "moderation": ModerationResource(),
                       "mlflow_tracking": MLflowResource()},
        )
        check = _check(result)
        assert not check.passed and not result.success
        assert check.metadata["failed_batches"].value == ["b2"] and check.metadata["batch"].value == "b2"
        assert check.metadata["batch_shares"].value == {"b1": 1 / 12, "b2": 3 / 12}
        # b2 is measured against b1, the earlier batch of the same run
        assert check.metadata["earlier_batches_share"].value == 1 / 12 and check.metadata["batch_jumps"].value["b2"] == 3 / 12 - 1 / 12
        metadata = result.asset_materializations_for_node("content_audit")[0].metadata
        assert metadata["batch_flagged_shares"].value == {"b1": 1 / 12, "b2": 3 / 12} and metadata["run_rows"].value == 24
        observed = {o.partition: o.metadata for o in result.asset_observations_for_node("content_audit")}
        assert {b: m["dagster/row_count"].value for b, m in observed.items()} == {"b1": 12, "b2": 12}
        assert {b: m["flagged_share"].value for b, m in observed.items()} == {"b1": 1 / 12, "b2": 3 / 12}


def test_production_moderation_screens_images_too(data_root, moderation_server, monkeypatch):
    from aesthetic_platform.resources import resources_for
    from aesthetic_platform.resources.moderation import moderation_for_profile

    monkeypatch.delenv("AESTHETIC_MODERATION", raising=False)
    production = resources_for("production")["moderation"]
    assert production.enabled and production.images
    assert not moderation_for_profile("local").enabled and not moderation_for_profile("local").images
    monkeypatch.setenv("AESTHETIC_MODERATION", "off")
    assert not moderation_for_profile("production").images  # off stops the endpoint for images as well

    make_audit_batch(data_root, "b1", TEXTS)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        resource = ModerationResource(enabled=True, images=True, base_url=moderation_server.base_url, max_attempts=1)
        result = _run(instance, data_root, "b1", moderation=resource)
        assert result.success and moderation_server.state.requests == 1 + 8  # the prompts in one request, then each image
        images = [r for r in load_audit(data_root, "b1") if r.kind == "image"]
        assert len(images) == 8 and all("moderation" in r.auditor and "moderation/" in r.scores_json for r in images)


def test_the_asset_shows_its_moderation_kind_code_version_and_row_count(data_root, monkeypatch):
    from aesthetic_platform.assets.metadata import code_version_of
    from aesthetic_platform.resources.moderation import moderation_for_profile
    from aesthetic_platform.resources.profile import current_profile

    (spec,) = content_audit.specs
    assert spec.kinds == {moderation_for_profile(current_profile()).kind, "parquet"}
    monkeypatch.delenv("AESTHETIC_MODERATION", raising=False)
    assert moderation_for_profile("local").kind == "python" and moderation_for_profile("production").kind == "openai"
    monkeypatch.setenv("AESTHETIC_MODERATION", "on")
    assert moderation_for_profile("local").kind == "openai"
    assert content_audit.code_versions_by_key[content_audit.key] == code_version_of("aesthetic_platform.audit")

    make_audit_batch(data_root, "b1", TEXTS, per_prompt=1)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        metadata = _run(instance, data_root, "b1").asset_materializations_for_node("content_audit")[0].metadata
        assert metadata["dagster/row_count"].value == 8  # 4 prompts, 4 images


@pytest.mark.slow
def test_the_judgments_asset_follows_the_recorded_unaudited_policy(data_root, moderation_server):
    from aesthetic_platform.assets.judging import judgments
    from aesthetic_platform.resources import JudgeResource

    make_audit_batch(data_root, "b1", TEXTS)  # 2 candidates per prompt: one pair, judged in both orders
    resources = {
        "data_root": DataRootResource(home=str(data_root.root)), "judge": JudgeResource(),
        "moderation": ModerationResource(enabled=True, base_url=moderation_server.base_url, max_attempts=1),
        "mlflow_tracking": MLflowResource(),
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        judged = {}
        for policy in ("include", "skip"):
            moderation_server.state.inject("server_error")  # the first prompt's request fails: it stays unaudited
            result = dg.materialize(
                [content_audit, judgments], partition_key="b1", instance=instance, resources=resources,
                run_config={"ops": {"content_audit": {"config": {"unaudited_policy": policy, "moderation_batch": 1}}}},
            )
            judged[policy] = result.asset_materializations_for_node("judgments")[0].metadata
    # flagged by the rules and by the endpoint: 4 images always out; the unaudited prompt's 2 only under skip
    assert judged["include"]["excluded_by_audit"].value == 4 and judged["include"]["verdicts"].value == 2 * 2
    assert judged["skip"]["excluded_by_audit"].value == 6 and judged["skip"]["verdicts"].value == 2
