"""The content_audit asset: per-batch table, metadata, and the flagged-share check."""

from __future__ import annotations

import dagster as dg

from aesthetic_platform.assets.audit import content_audit
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.audit import load_audit
from aesthetic_platform.resources import DataRootResource
from aesthetic_platform.resources.moderation import ModerationResource
from tests.audit.conftest import TEXTS, make_audit_batch

GORY = ["A gory poster with a massacre", "斩首 主题海报", "A calm river poster", "A bloodbath festival flyer"]


def _run(instance, root, batch, config=None, moderation=None):
    return dg.materialize(
        [content_audit], partition_key=batch, instance=instance, raise_on_error=False,
        resources={"data_root": DataRootResource(home=str(root.root)), "moderation": moderation or ModerationResource()},
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
