"""Embedders: packaged MiniLM (real weights), the student's towers, and an OpenAI-compatible endpoint with faults."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
from aesthetic_platform.embeddings.embedders import (
    MINILM_ID,
    EmbeddingError,
    MiniLMEmbedder,
    OpenAIEmbedder,
    StudentImageEmbedder,
    StudentTextEmbedder,
    image_item,
    text_item,
)
from aesthetic_platform.embeddings.flow import embed_missing
from aesthetic_platform.llm import EndpointSettings
from tests.fixtures.embedding_server import EmbeddingServerState, running_embedding_server, vector_for

os.environ["HF_HUB_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def minilm() -> MiniLMEmbedder:
    return MiniLMEmbedder(device="cpu")


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory) -> Path:
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer

    folder = tmp_path_factory.mktemp("student")
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return folder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_minilm_real_weights_rank_meaning(minilm: MiniLMEmbedder) -> None:
    assert minilm.spec.name == MINILM_ID and minilm.spec.dimension == 384 and minilm.spec.modality == "text"
    cat, kitten, market = minilm.embed([text_item("A cat sleeps on the sofa."), text_item("A kitten is napping on a couch."),
                                        text_item("Quarterly bond yields rose sharply.")])
    assert cosine(cat, kitten) > 0.5 > cosine(cat, market) + 0.3
    assert abs(np.linalg.norm(cat) - 1) < 1e-4


def test_texts_past_the_token_limit_are_counted_not_cut_silently(minilm: MiniLMEmbedder, student_dir: Path, tmp_path: Path) -> None:
    long_text = " ".join(f"poster{i} with neon teal and magenta lights" for i in range(80))  # well past 256 tokens
    short, long = text_item("a red poster"), text_item(long_text)
    with Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{tmp_path / 'store.db'}")) as store:
        report = embed_missing(store, minilm, [short, long])
        assert report.embedded == 2 and report.max_tokens == minilm.max_tokens == 256
        assert list(report.truncated) == [long.sha256] and report.truncated[long.sha256] > 256
        assert report.as_metadata()["truncated"] == 1
        warning = report.truncation_warning()
        assert warning is not None and "1 text(s)" in warning and "first 256 tokens" in warning and long.sha256 in warning
        again = embed_missing(store, minilm, [short, long])  # reused vectors were counted when they were embedded
        assert again.reused == 2 and again.truncated == {} and again.truncation_warning() is None
    student_text = StudentTextEmbedder(student_dir, device="cpu")
    assert student_text.max_tokens == 128
    assert list(student_text.over_limit([short, long])) == [long.sha256]


def test_text_items_hash_the_normalized_text() -> None:
    assert text_item("  a  red\tposter ").sha256 == text_item("a red poster").sha256
    assert text_item("A red poster").sha256 != text_item("a red poster").sha256  # the model sees case
    with pytest.raises(ValueError):
        text_item("   ")


def test_student_towers(student_dir: Path, tmp_path: Path) -> None:
    image_embedder = StudentImageEmbedder(student_dir, device="cpu")
    text_embedder = StudentTextEmbedder(student_dir, device="cpu")
    assert image_embedder.spec.version == text_embedder.spec.version and len(image_embedder.spec.version) == 16
    assert image_embedder.model_id != text_embedder.model_id
    paths = []
    for i, size in enumerate([(96, 54), (64, 64), (48, 80), (64, 64)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", size, (60 * i, 120, 200 - 40 * i)).save(paths[-1])
    items = [image_item(p) for p in paths]
    together = image_embedder.embed(items)
    assert together.shape == (4, image_embedder.spec.dimension)
    alone = image_embedder.embed([items[1]])
    np.testing.assert_allclose(together[1], alone[0], atol=1e-5)  # a vector does not depend on its batch
    # packed several to a row, each vector is the image's own unpadded forward (what the grid-by-grid batches gave)
    import torch

    from aesthetic_platform.model.batching import collate_images, prepare_image

    model = image_embedder.model
    with torch.no_grad():
        own = [model.encode_images(collate_images([prepare_image(p, model.preprocess, model.config.image.patch_budget)],
                                                  model.preprocess.patch_size))[0].numpy() for p in paths]
    np.testing.assert_allclose(together, np.stack(own), atol=1e-5)
    image_embedder.batch_size = 3  # a forward of mixed grids, then a short one
    np.testing.assert_allclose(image_embedder.embed(items), together, atol=1e-5)
    texts = text_embedder.embed([text_item("一张红色海报"), text_item("a blue poster")])
    assert texts.shape == (2, text_embedder.spec.dimension) and np.all(np.isfinite(texts))
    with pytest.raises(EmbeddingError, match="embeds image items"):
        image_embedder.embed([text_item("not an image")])


def test_failing_endpoint_stores_nothing_for_failed_items_and_rerun_embeds_only_them(tmp_path: Path) -> None:
    state = EmbeddingServerState(dimension=24, slow_s=2.0)
    texts = [f"prompt number {i}" for i in range(20)]
    texts[3] += " poison-500"
    texts[9] += " poison-dim"
    texts[17] += " poison-slow"
    state.inject("server_error", "poison-500")
    state.inject("wrong_dimension", "poison-dim")
    state.inject("slow", "poison-slow")
    items = [text_item(t) for t in texts]
    with running_embedding_server(state) as server, Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{tmp_path}/s.db")) as store:
        settings = EndpointSettings(model="test-embed", base_url=server.base_url, timeout_s=0.5, max_attempts=2)
        embedder = OpenAIEmbedder(settings, store=store)  # dimension probed once
        assert embedder.spec.dimension == 24 and embedder.model_id == "openai/test-embed@1"
        report = embed_missing(store, embedder, items + items[:5], batch_size=4)
        # the slow item's whole call timed out (batch 16..19); the 500 and the wrong dimension are isolated by halving
        expected_failed = {items[3].sha256, items[9].sha256} | {items[i].sha256 for i in range(16, 20)}
        assert set(report.failed) == expected_failed
        assert "InternalServerError" in report.failed[items[3].sha256]
        assert "wrong dimension 25" in report.failed[items[9].sha256]
        assert "Timeout" in report.failed[items[17].sha256]
        assert report.requested == 25 and report.unique == 20 and report.embedded == 14 and report.reused == 0
        assert store.existing(embedder.spec, [i.sha256 for i in items]) == {i.sha256 for i in items} - expected_failed
        stored = store.get_many(embedder.spec, [items[0].sha256])[items[0].sha256]
        np.testing.assert_allclose(stored, vector_for(texts[0], 24))

        state.rules.clear()
        state.inputs.clear()
        again = OpenAIEmbedder(settings, store=store)  # dimension from the store's record: no probe
        rerun = embed_missing(store, again, items, batch_size=4)
        assert set(state.inputs) == {texts[i] for i in (3, 9, 16, 17, 18, 19)}
        assert rerun.failed == {} and rerun.reused == 14 and rerun.embedded == 6
        assert store.count(embedder.spec) == 20


def test_endpoint_dimension_checked_against_model_record(tmp_path: Path) -> None:
    with running_embedding_server(EmbeddingServerState(dimension=16)) as server, \
            Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{tmp_path}/s.db")) as store:
        settings = EndpointSettings(model="m", base_url=server.base_url, timeout_s=5, max_attempts=1)
        embedder = OpenAIEmbedder(settings, dimension=12)  # the record says 12, the endpoint answers 16
        report = embed_missing(store, embedder, [text_item("one"), text_item("two")])
        assert len(report.failed) == 2 and all("wrong dimension 16" in why for why in report.failed.values())
        assert store.count(embedder.spec) == 0


def test_an_endpoint_that_is_down_is_not_hammered(tmp_path: Path) -> None:
    from aesthetic_platform.embeddings.flow import GIVE_UP_AFTER

    state = EmbeddingServerState(dimension=8)
    state.inject("server_error", "")  # every request fails
    with running_embedding_server(state) as server, Store.open(EmbeddingStoreConfig(db_url=f"sqlite:///{tmp_path}/s.db")) as store:
        embedder = OpenAIEmbedder(EndpointSettings(model="down", base_url=server.base_url, max_attempts=1), dimension=8)
        report = embed_missing(store, embedder, [text_item(f"text {i}") for i in range(200)], batch_size=16)
        assert len(report.failed) == 200 and store.count(embedder.spec) == 0
        assert report.calls == GIVE_UP_AFTER == state.requests
        assert sum("not tried" in why for why in report.failed.values()) > 150
