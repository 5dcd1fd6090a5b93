"""Seed 003's dataset flow (batched, no N+1) and the store's command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from aesthetic_platform.cli import app
from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
from aesthetic_platform.embeddings.embedders import OpenAIEmbedder, StudentImageEmbedder, image_item, text_item
from aesthetic_platform.embeddings.flow import build_dataset, embed_missing
from aesthetic_platform.embeddings.labels import LabelRecord, add_labels
from aesthetic_platform.llm import EndpointSettings
from aesthetic_platform.paths import DataRoot
from tests.embeddings.test_store import StatementCounter
from tests.fixtures.embedding_server import EmbeddingServerState, running_embedding_server


@pytest.fixture(scope="module")
def server():
    with running_embedding_server(EmbeddingServerState(dimension=16)) as running:
        yield running


def _dataset(store: Store, server, n: int):
    embedder = OpenAIEmbedder(EndpointSettings(model="flow", base_url=server.base_url, max_attempts=1), dimension=16)
    texts = [f"poster {i}" for i in range(n)]
    batches = [[text_item(t) for t in texts[: n // 2]] + [text_item(texts[0])], [text_item(t) for t in texts[n // 2 :]]]
    store.put_items(item for batch in batches for item in batch)
    records = []
    for i in range(0, n, 2):  # every other item labelled, 3 annotators, one disagreement pattern
        sha = text_item(texts[i]).sha256
        label = "good" if i % 4 == 0 else "bad"
        records += [LabelRecord(item=sha, task="usable", annotator=who, label=label) for who in ("ann", "ben")]
        records.append(LabelRecord(item=sha, task="usable", annotator="cy", label=label if i % 3 else "other"))
    add_labels(store, records)
    with StatementCounter(store.engine) as counter:
        dataset = build_dataset(store, embedder, "usable", batches, batch_size=256)
    return dataset, counter, texts


def test_dataset_flow_is_batched_and_joins_consensus_labels(store: Store, server) -> None:
    small, small_counter, texts = _dataset(store, server, 100)
    assert small.report.requested == 101 and small.report.unique == 100 and small.report.embedded == 100
    assert small.X.shape == (50, 16) and len(small.y) == 50 and small.unlabelled == 50
    assert set(small.y) == {"good", "bad"}
    assert small.y[small.hashes.index(text_item(texts[4]).sha256)] == "good"
    np.testing.assert_allclose(small.X[0], store.get_many(small.model_id, [small.hashes[0]])[small.hashes[0]])
    # a second run reuses every vector
    again = build_dataset(store, OpenAIEmbedder(EndpointSettings(model="flow", base_url=server.base_url), dimension=16), "usable",
                          [[text_item(t) for t in texts]])
    assert again.report.reused == 100 and again.report.embedded == 0


def test_statements_do_not_grow_with_items(db_url: str, server) -> None:
    from aesthetic_platform.embeddings import db as store_db

    counts = []
    for n in (100, 1000):
        with Store.open(EmbeddingStoreConfig(db_url=db_url)) as st:
            with st.engine.begin() as conn:  # one database for both sizes: start empty
                for table in (store_db.labels, store_db.embeddings, store_db.items, store_db.embedding_models):
                    conn.execute(table.delete())
            dataset, counter, _ = _dataset(st, server, n)
            assert dataset.X.shape[0] == n // 2
            counts.append(len(counter.statements))
    assert counts[0] == counts[1] <= 20  # two pulled batches: a handful of statements each, whatever their size


def test_cli_db_upgrade_labels_and_similar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aesthetic_platform.model.config import named_config
    from aesthetic_platform.model.scorer_model import AestheticScorer

    home = tmp_path / "home"
    monkeypatch.delenv("AESTHETIC_DB_URL", raising=False)
    runner = CliRunner()
    result = runner.invoke(app, ["db", "upgrade", "--home", str(home)])
    assert result.exit_code == 0 and "upgraded from an empty database to 0001_store" in result.output
    assert (home / "db" / "store.db").exists()
    assert "already at 0001_store" in runner.invoke(app, ["db", "upgrade", "--home", str(home)]).output

    checkpoint = tmp_path / "student"
    AestheticScorer(named_config("tiny")).save_pretrained(checkpoint)
    images = []
    for i in range(6):
        images.append(tmp_path / f"img{i}.png")
        Image.new("RGB", (64, 48), (40 * i, 255 - 40 * i, 90)).save(images[-1])
    with Store.open(EmbeddingStoreConfig(), root=DataRoot(home)) as store:
        report = embed_missing(store, StudentImageEmbedder(checkpoint, device="cpu"), [image_item(p) for p in images[:5]])
        assert report.embedded == 5
    result = runner.invoke(app, ["similar", str(images[0]), "--k", "3", "--checkpoint", str(checkpoint), "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert len(out["neighbors"]) == 3 and all(n["sha256"] != image_item(images[0]).sha256 for n in out["neighbors"])
    assert out["neighbors"][0]["path"] in {str(p) for p in images[1:5]}
    new = runner.invoke(app, ["similar", str(images[5]), "--checkpoint", str(checkpoint), "--home", str(home)])
    assert new.exit_code == 0 and "student-image@" in new.output  # not stored: embedded on the fly with the checkpoint

    labels = tmp_path / "labels.csv"
    shas = [image_item(p).sha256 for p in images[:3]]
    labels.write_text("item,task,annotator,label\n" + "".join(f"{s},usable,ann,yes\n{s},usable,bob,{'no' if i else 'yes'}\n"
                                                              for i, s in enumerate(shas)), encoding="utf-8")
    bad = tmp_path / "bad.csv"
    bad.write_text(f"item,task,annotator,label\n{shas[0]},usable,ann,\n", encoding="utf-8")
    result = runner.invoke(app, ["labels", "import", str(bad), "--home", str(home)])
    assert result.exit_code == 2 and "line 2, field 'label'" in result.output
    assert runner.invoke(app, ["labels", "import", str(labels), "--home", str(home)]).exit_code == 0
    review = runner.invoke(app, ["labels", "review", "--task", "usable", "--home", str(home)])
    assert review.exit_code == 0 and "(2 items)" in review.output and "Krippendorff" in review.output
    out_json = tmp_path / "out.json"
    assert runner.invoke(app, ["labels", "export", str(out_json), "--effective", "--home", str(home)]).exit_code == 0
    assert len(json.loads(out_json.read_text())["labels"]) == 6


def test_cli_db_upgrade_on_both_backends(db_url: str) -> None:
    from aesthetic_platform.embeddings import db as store_db

    runner = CliRunner()
    first = runner.invoke(app, ["db", "upgrade", "--db-url", db_url])
    assert first.exit_code == 0 and "upgraded from an empty database to" in first.output, first.output
    assert "already at" in runner.invoke(app, ["db", "upgrade", "--db-url", db_url]).output
    engine = store_db.make_engine(db_url)
    assert store_db.current_revision(engine) == store_db.head_revision()
    engine.dispose()
