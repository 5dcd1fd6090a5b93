"""The content audit's image screen: the registered embedding classifier of the safety task, when there is one."""

from __future__ import annotations

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.assets.audit import content_audit
from aesthetic_platform.assets.partitions import prompt_batch
from aesthetic_platform.audit import NO_IMAGE_MODEL, excluded_candidates, load_audit
from aesthetic_platform.generation import CandidateConfig, generate_candidates, load_manifest
from aesthetic_platform.generation.base import GenerationRequest
from aesthetic_platform.prompts import write_prompts
from aesthetic_platform.prompts.records import PromptRecord
from aesthetic_platform.resources import DataRootResource, MLflowResource
from aesthetic_platform.resources.moderation import ModerationResource

PROMPTS = ["A warm desert poster at noon", "A cold glacier poster at night", "A warm spice market poster"]


def noise(warm: bool, seed: int, height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = np.array([220, 60, 40] if warm else [40, 80, 220], dtype=float)
    return np.clip(base + rng.normal(0, 25, (height, width, 3)), 0, 255).astype(np.uint8)


class WarmColdRenderer:
    """Warm noise for prompts that say 'warm', cold noise otherwise: what the test classifier learns to tell apart."""

    seed_families = True
    name = "warm-cold"
    params = {"renderer": "warm-cold"}

    def generate(self, requests: list[GenerationRequest]) -> list[Image.Image]:
        return [Image.fromarray(noise("warm" in r.prompt, r.seed, r.height, r.width)) for r in requests]


def _audit(instance, root, config: dict | None = None) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [content_audit], partition_key="b1", instance=instance,
        resources={"data_root": DataRootResource(home=str(root.root)), "moderation": ModerationResource(),
                   "mlflow_tracking": MLflowResource()},
        # the flagged-share check is tested elsewhere: here flagging a third of the items is the point
        run_config={"ops": {"content_audit": {"config": {"max_flagged_share": 1.0, "max_flagged_jump": 1.0, **(config or {})}}}},
    )


@pytest.mark.slow
def test_the_registered_safety_classifier_screens_candidate_images(data_root, tmp_path, monkeypatch):
    from aesthetic_platform.embeddings import Store
    from aesthetic_platform.embeddings.classifier import ClassifierSettings, labelled_vectors, train_classifier
    from aesthetic_platform.embeddings.embedders import StudentImageEmbedder, image_item
    from aesthetic_platform.embeddings.flow import embed_missing
    from aesthetic_platform.embeddings.labels import LabelRecord, add_labels
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer
    from aesthetic_platform.tracking import TrackingConfig
    from aesthetic_platform.tracking.classifiers import EXPERIMENT, log_classifier

    monkeypatch.delenv("AESTHETIC_DB_URL", raising=False)
    specs = [PromptRecord(text=t).to_spec("b1", "file") for t in PROMPTS]
    write_prompts(data_root, "b1", specs)
    config = CandidateConfig(per_prompt=2, ratios_per_prompt=1, pixel_budget=48 * 48)
    generate_candidates(data_root, "b1", specs, config, WarmColdRenderer())
    candidates = load_manifest(data_root, "b1")
    cold = {c.image_id for c in candidates if c.prompt_id == specs[1].prompt_id}
    assert len(candidates) == 6 and len(cold) == 2

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        unscreened = _audit(instance, data_root)  # nothing registered yet: images pass, and say why
        images = [r for r in load_audit(data_root, "b1") if r.kind == "image"]
        assert {(r.status, r.auditor, r.reason) for r in images} == {("passed", "none", NO_IMAGE_MODEL)}
        assert unscreened.asset_materializations_for_node("content_audit")[0].metadata["image_screen"].value == "none"

        # a safety classifier of the embedding store: warm noise is safe, cold is not (labels by two annotators)
        checkpoint = tmp_path / "student"
        AestheticScorer(named_config("tiny")).save_pretrained(checkpoint)
        embedder = StudentImageEmbedder(checkpoint, device="cpu")
        training = []
        for i in range(24):
            path = tmp_path / f"train{i}.png"
            Image.fromarray(noise(i % 2 == 0, 100 + i, 48, 64)).save(path)
            training.append((image_item(str(path)), "yes" if i % 2 == 0 else "no"))
        with Store.open(root=data_root) as store:
            items = [item for item, _ in training] + [image_item(c.path) for c in candidates]  # candidates: vectors already cached
            assert not embed_missing(store, embedder, items).failed
            add_labels(store, [LabelRecord(item=item.sha256, task="safe", annotator=who, label=label)
                               for item, label in training for who in ("ann", "bob")])
            data = labelled_vectors(store, "safe")
        log_classifier(train_classifier(data, ClassifierSettings(task="safe", epochs=60, patience=15)),
                       TrackingConfig.for_root(data_root, None, EXPERIMENT))

        other = _audit(instance, data_root, {"image_safety_task": "nsfw"})  # a task nobody registered: still no image model
        assert other.asset_materializations_for_node("content_audit")[0].metadata["image_screen"].value == "none"

        screened = _audit(instance, data_root)  # the default task 'safe' is registered now: no setting names it
        metadata = screened.asset_materializations_for_node("content_audit")[0].metadata
        assert metadata["image_screen"].value == "classifier:safe@v1"
        images = {r.item_id: r for r in load_audit(data_root, "b1") if r.kind == "image"}
        assert {i for i, r in images.items() if r.status == "flagged"} == cold
        assert all(r.status == "passed" for i, r in images.items() if i not in cold)
        assert {r.auditor for r in images.values()} == {"classifier:safe@v1"}
        assert all(r.categories == ["classifier:safe"] and "p_no" in r.scores_json for i, r in images.items() if i in cold)
        assert set(excluded_candidates(data_root, "b1")) == cold  # judging leaves them out

        _audit(instance, data_root, {"image_safety_threshold": 0.0})  # the threshold is part of what was audited: asked again
        assert {r.status for r in load_audit(data_root, "b1") if r.kind == "image"} == {"flagged"}
