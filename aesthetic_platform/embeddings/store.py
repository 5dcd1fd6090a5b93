"""The shared embedding store: vectors keyed by (embedding model, content sha256), plus items.

Every read and write is batched: ``get_many`` issues one ``SELECT … IN``/``= ANY`` per
chunk of hashes and ``put_many`` one ``INSERT … ON CONFLICT DO NOTHING`` per chunk of rows,
so the number of statements never depends on anything but the chunking (seed 003: the
database may be 100 ms away). SQLite and Postgres + pgvector share this code; the URL picks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from aesthetic_platform.embeddings import db
from aesthetic_platform.embeddings.config import EmbeddingStoreConfig
from aesthetic_platform.paths import DataRoot

Modality = Literal["text", "image"]
StoredDtype = Literal["float32", "float16"]
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: pgvector limits: an HNSW index takes vector up to 2000 dims, halfvec up to 4000
HNSW_MAX_VECTOR = 2000
HNSW_MAX_HALFVEC = 4000
PG_MAX_DIMS = 16000


class StoreError(ValueError):
    """A request the store refuses, with the reason."""


class DimensionMismatchError(StoreError):
    """A vector, or a model re-registered, with another dimension than the model's record."""


@dataclass(frozen=True)
class ModelSpec:
    """What an embedder declares: ``name@version`` is its stable model id."""

    name: str
    version: str
    dimension: int
    modality: Modality

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class ModelRecord:
    """A registered embedding model (one row of ``embedding_models``)."""

    id: int
    name: str
    version: str
    dimension: int
    dtype: StoredDtype
    modality: Modality

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def pg_column(self) -> str:
        return f"{'halfvec' if self.dtype == 'float16' else 'vec'}_{self.dimension}"

    @property
    def pg_indexed(self) -> bool:
        return self.dimension <= (HNSW_MAX_HALFVEC if self.dtype == "float16" else HNSW_MAX_VECTOR)


@dataclass(frozen=True)
class Item:
    """A piece of content that can be embedded and labelled: an image file or a text."""

    sha256: str
    kind: Literal["image", "text"]
    path: str | None = None
    text: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Neighbor:
    sha256: str
    similarity: float  # cosine similarity, 1 = same direction
    item: Item | None = None


def check_hash(value: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise StoreError(f"not a sha256 hex digest: {value!r}")
    return value


def _chunks(values: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class Store:
    """One database: embedding models, embeddings, items and labels (see ``labels.py``)."""

    def __init__(self, engine: sa.Engine, config: EmbeddingStoreConfig | None = None, root: DataRoot | None = None) -> None:
        self.engine = engine
        self.config = config or EmbeddingStoreConfig()
        #: the data root this store is opened for: item paths written under a former location of it read back where it is now
        self.root = root
        self.backend = engine.dialect.name
        self._models: dict[tuple[str, str], ModelRecord] = {}
        self._pgvector_version: tuple[int, ...] | None = None
        self._pg_ready: set[int] = set()  # models whose vector column and index this Store has ensured
        self._matrices: dict[int, tuple[int, list[str], np.ndarray]] = {}  # SQLite search: model id -> (rows, hashes, unit rows)

    @classmethod
    def open(cls, config: EmbeddingStoreConfig | None = None, root: DataRoot | None = None) -> Store:
        """Open the configured store, upgrading an empty or older database to the head revision."""
        config = config or EmbeddingStoreConfig()
        engine = db.make_engine(config.resolved_url(root))
        db.upgrade(engine)
        engine.dispose()  # connections made before the vector extension existed lack its types (db.make_engine)
        return cls(engine, config, root)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    # ---- chunk sizes under the backend's parameter limits -----------------------------------

    @property
    def lookup_chunk(self) -> int:
        cap = db.SQLITE_MAX_PARAMS - 8 if self.backend == "sqlite" else 100_000  # Postgres: one array parameter
        return max(1, min(self.config.lookup_chunk, cap))

    @property
    def write_chunk(self) -> int:
        cap = (db.SQLITE_MAX_PARAMS if self.backend == "sqlite" else db.POSTGRES_MAX_PARAMS) // 4
        return max(1, min(self.config.write_chunk, cap))

    # ---- models -------------------------------------------------------------------------------

    def pgvector_version(self) -> tuple[int, ...]:
        if self._pgvector_version is None:
            with self.engine.connect() as conn:
                text = conn.execute(sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")).scalar_one()
            self._pgvector_version = tuple(int(p) for p in re.findall(r"\d+", text)[:3])
        return self._pgvector_version

    def _stored_dtype(self, dimension: int) -> StoredDtype:
        """float32 blobs on SQLite; on Postgres ``vector`` up to 2000 dims (HNSW-indexable), ``halfvec``
        between 2001 and 4000 when pgvector has it (>= 0.7), else ``vector`` searched exactly."""
        if self.backend != "postgresql" or dimension <= HNSW_MAX_VECTOR:
            return "float32"
        if dimension <= HNSW_MAX_HALFVEC and self.pgvector_version() >= (0, 7):
            return "float16"
        return "float32"

    def register_model(self, spec: ModelSpec) -> ModelRecord:
        """Find or create the model record; the same name and version with another dimension is an error."""
        if spec.dimension <= 0 or (self.backend == "postgresql" and spec.dimension > PG_MAX_DIMS):
            raise DimensionMismatchError(f"model {spec.model_id}: unsupported dimension {spec.dimension}")
        record = self.find_model(spec.name, spec.version)
        if record is None:
            row = {
                "name": spec.name, "version": spec.version, "dimension": spec.dimension,
                "dtype": self._stored_dtype(spec.dimension), "modality": spec.modality, "created_at": db.utcnow(),
            }
            with self.engine.begin() as conn:
                if self.backend == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(7416310022)"))
                    stmt: sa.Insert = postgresql.insert(db.embedding_models).values(row).on_conflict_do_nothing()
                else:
                    stmt = sqlite_insert(db.embedding_models).values(row).on_conflict_do_nothing()
                conn.execute(stmt)
            self._models.pop((spec.name, spec.version), None)
            record = self.find_model(spec.name, spec.version)
            assert record is not None
        if record.dimension != spec.dimension:
            raise DimensionMismatchError(
                f"model {spec.model_id} is registered with dimension {record.dimension}, not {spec.dimension}; "
                "give a changed model a new version"
            )
        if record.modality != spec.modality:
            raise StoreError(f"model {spec.model_id} is registered for {record.modality}, not {spec.modality}")
        if self.backend == "postgresql" and record.id not in self._pg_ready:
            self._ensure_pg_column(record)
            self._pg_ready.add(record.id)
        return record

    def _ensure_pg_column(self, record: ModelRecord) -> None:
        kind = "halfvec" if record.dtype == "float16" else "vector"
        with self.engine.begin() as conn:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(7416310022)"))
            conn.execute(sa.text(f"ALTER TABLE embeddings ADD COLUMN IF NOT EXISTS {record.pg_column} {kind}({record.dimension})"))
            self._create_index(conn, record)

    def _create_index(self, conn: sa.Connection, record: ModelRecord) -> None:
        if not record.pg_indexed:
            return
        kind = "halfvec" if record.dtype == "float16" else "vector"
        conn.execute(sa.text("SET LOCAL maintenance_work_mem = '1GB'"))  # an HNSW build that fits in memory is many times faster
        conn.execute(
            sa.text(
                f"CREATE INDEX IF NOT EXISTS embeddings_hnsw_model_{int(record.id)} ON embeddings "
                f"USING hnsw ({record.pg_column} {kind}_cosine_ops) WHERE model_id = {int(record.id)}"
            )
        )

    @contextmanager
    def deferred_index(self, model: ModelRecord | ModelSpec | str) -> Iterator[ModelRecord]:
        """Bulk load: on Postgres drop the model's HNSW index, and build it once afterwards (also when the load fails).
        The table is analyzed then too: with statistics from before the load the planner expects no rows with this
        model's vector column and sorts a full scan instead of using the new index, until autovacuum catches up."""
        record = self._record(model)
        if self.backend != "postgresql" or not record.pg_indexed:
            yield record
            return
        with self.engine.begin() as conn:
            conn.execute(sa.text(f"DROP INDEX IF EXISTS embeddings_hnsw_model_{int(record.id)}"))
        try:
            yield record
        finally:
            with self.engine.begin() as conn:
                self._create_index(conn, record)
                conn.execute(sa.text("ANALYZE embeddings"))

    def find_model(self, name: str, version: str) -> ModelRecord | None:
        key = (name, version)
        if key not in self._models:
            t = db.embedding_models
            with self.engine.connect() as conn:
                row = conn.execute(sa.select(t).where(t.c.name == name, t.c.version == version)).mappings().first()
            if row is None:
                return None
            self._models[key] = ModelRecord(
                id=row["id"], name=row["name"], version=row["version"], dimension=row["dimension"], dtype=row["dtype"],
                modality=row["modality"],
            )
        return self._models[key]

    def model(self, model_id: str) -> ModelRecord:
        """A registered model by its id ``name@version``."""
        name, _, version = model_id.rpartition("@")
        record = self.find_model(name, version) if name else None
        if record is None:
            known = ", ".join(m.model_id for m in self.models()) or "none"
            raise StoreError(f"no embedding model {model_id!r} in the store (registered: {known})")
        return record

    def models(self) -> list[ModelRecord]:
        t = db.embedding_models
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t.c.name, t.c.version).order_by(t.c.id)).all()
        return [self.find_model(name, version) for name, version in rows]  # type: ignore[misc]

    def _record(self, model: ModelRecord | ModelSpec | str) -> ModelRecord:
        if isinstance(model, ModelRecord):
            return model
        if isinstance(model, ModelSpec):
            return self.register_model(model)
        return self.model(model)

    # ---- embeddings ----------------------------------------------------------------------------

    def _pg_table(self, record: ModelRecord) -> sa.TableClause:
        from pgvector.sqlalchemy import HALFVEC, VECTOR

        kind = HALFVEC if record.dtype == "float16" else VECTOR
        return sa.table(
            "embeddings",
            sa.column("model_id", sa.Integer),
            sa.column("sha256", sa.String),
            sa.column("created_at", sa.DateTime(timezone=True)),
            sa.column(record.pg_column, kind(record.dimension)),
        )

    def _vector_column(self, record: ModelRecord) -> tuple[sa.TableClause | sa.Table, sa.ColumnElement]:
        if self.backend == "postgresql":
            table = self._pg_table(record)
            return table, table.c[record.pg_column]
        return db.embeddings, db.embeddings.c.vector

    def _vector_out(self, record: ModelRecord, column: sa.ColumnElement) -> sa.ColumnElement:
        """What a read selects: the blob on SQLite; on Postgres the binary send form (``vector_send``), which numpy
        reads directly, instead of the text form that costs a float parse per value."""
        if self.backend == "postgresql":
            return getattr(sa.func, "halfvec_send" if record.dtype == "float16" else "vector_send")(column)
        return column

    def _hash_filter(self, table: sa.TableClause | sa.Table, chunk: Sequence[str]) -> sa.ColumnElement[bool]:
        if self.backend == "postgresql":
            return table.c.sha256 == sa.any_(sa.bindparam("hashes", list(chunk), type_=postgresql.ARRAY(sa.String)))
        return table.c.sha256.in_(list(chunk))

    def _decode(self, record: ModelRecord, value: Any) -> np.ndarray:
        if self.backend == "postgresql":  # int16 dimension, int16 unused, then big-endian floats
            return np.frombuffer(value, dtype=">f2" if record.dtype == "float16" else ">f4", offset=4).astype(np.float32)
        return np.frombuffer(value, dtype="<f4")

    def get_many(self, model: ModelRecord | ModelSpec | str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors among ``hashes`` (missing ones are absent), one statement per chunk."""
        record = self._record(model)
        wanted = list(dict.fromkeys(check_hash(h) for h in hashes))
        table, vector = self._vector_column(record)
        found: dict[str, np.ndarray] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, self.lookup_chunk):
                stmt = sa.select(table.c.sha256, self._vector_out(record, vector)).where(
                    table.c.model_id == record.id, self._hash_filter(table, chunk)
                )
                for sha, value in conn.execute(stmt):
                    if value is not None:
                        found[sha] = self._decode(record, value)
        return found

    def existing(self, model: ModelRecord | ModelSpec | str, hashes: Iterable[str]) -> set[str]:
        """Which of ``hashes`` already have a vector (no vectors transferred), one statement per chunk."""
        record = self._record(model)
        wanted = list(dict.fromkeys(check_hash(h) for h in hashes))
        table, vector = self._vector_column(record)
        present: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, self.lookup_chunk):
                stmt = sa.select(table.c.sha256).where(
                    table.c.model_id == record.id, vector.is_not(None), self._hash_filter(table, chunk)
                )
                present.update(conn.execute(stmt).scalars())
        return present

    def _check_vector(self, record: ModelRecord, sha: str, vector: Any) -> np.ndarray:
        array = np.asarray(vector, dtype=np.float32)
        if array.ndim != 1 or array.shape[0] != record.dimension:
            raise DimensionMismatchError(
                f"model {record.model_id} has dimension {record.dimension}, got a vector of shape {tuple(array.shape)} for {sha}"
            )
        if not np.all(np.isfinite(array)):
            raise StoreError(f"vector for {sha} under {record.model_id} has non-finite values")
        if not np.any(array):
            raise StoreError(f"vector for {sha} under {record.model_id} is all zeros")
        if record.dtype == "float16":  # halfvec: Postgres refuses a whole batch over one overflow; an underflow loses the direction
            with np.errstate(over="ignore"):
                half = array.astype(np.float16)
            if not np.all(np.isfinite(half)):
                raise StoreError(
                    f"vector for {sha} under {record.model_id} has values beyond float16's range (|x| > 65504), "
                    "and this model is stored as halfvec; scale it (cosine search ignores the scale)"
                )
            if not np.any(half):
                raise StoreError(f"vector for {sha} under {record.model_id} is all zeros in float16, as this model is stored (halfvec)")
        return array

    def put_many(self, model: ModelRecord | ModelSpec | str, rows: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> int:
        """Store vectors (``{sha256: vector}``); existing (model, sha256) rows are kept. Every vector is
        checked before anything is written. Returns the number of new rows."""
        record = self._record(model)
        pairs = rows.items() if isinstance(rows, Mapping) else rows
        checked: dict[str, np.ndarray] = {}
        for sha, vector in pairs:
            checked[check_hash(sha)] = self._check_vector(record, sha, vector)
        now = db.utcnow()
        inserted = 0
        items = list(checked.items())
        with self.engine.begin() as conn:
            for chunk in _chunks(items, self.write_chunk):
                if self.backend == "postgresql":  # numpy arrays go to psycopg's binary pgvector dumper (db.make_engine)
                    table = sa.table("embeddings", sa.column("model_id"), sa.column("sha256"), sa.column("created_at"),
                                     sa.column(record.pg_column))
                    values = [{"model_id": record.id, "sha256": s, "created_at": now, record.pg_column: self._pg_value(record, v)}
                              for s, v in chunk]
                    pg_insert = postgresql.insert(table).values(values).on_conflict_do_nothing(index_elements=["model_id", "sha256"])
                    stmt = pg_insert.returning(table.c.sha256)
                else:
                    values = [
                        {"model_id": record.id, "sha256": s, "created_at": now, "vector": v.astype("<f4").tobytes()} for s, v in chunk
                    ]
                    lite_insert = sqlite_insert(db.embeddings).values(values).on_conflict_do_nothing(index_elements=["model_id", "sha256"])
                    stmt = lite_insert.returning(db.embeddings.c.sha256)
                inserted += len(conn.execute(stmt).all())  # RETURNING names only the rows actually inserted
        self._matrices.pop(record.id, None)
        return inserted

    @staticmethod
    def _pg_value(record: ModelRecord, vector: np.ndarray) -> Any:
        if record.dtype == "float16":
            from pgvector import HalfVector

            return HalfVector(vector)
        return vector

    def count(self, model: ModelRecord | ModelSpec | str) -> int:
        record = self._record(model)
        t = db.embeddings
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(t).where(t.c.model_id == record.id)).scalar_one()

    def all_vectors(self, model: ModelRecord | ModelSpec | str) -> tuple[list[str], np.ndarray]:
        """Every vector of a model (hashes, float32 matrix), one statement."""
        record = self._record(model)
        table, vector = self._vector_column(record)
        with self.engine.connect() as conn:
            stmt = sa.select(table.c.sha256, self._vector_out(record, vector)).where(table.c.model_id == record.id, vector.is_not(None))
            rows = conn.execute(stmt).all()
        if not rows:
            return [], np.zeros((0, record.dimension), dtype=np.float32)
        return [r[0] for r in rows], np.stack([self._decode(record, r[1]) for r in rows])

    def search(
        self, model: ModelRecord | ModelSpec | str, query: Any, k: int = 10, exact: bool = False, ef_search: int | None = None
    ) -> list[Neighbor]:
        """The ``k`` nearest stored vectors by cosine similarity. SQLite: exact, in numpy. Postgres: the
        model's HNSW index (approximate) unless ``exact`` or the dimension has no index."""
        record = self._record(model)
        q = self._check_vector(record, "query", query)
        if self.backend == "postgresql":
            hits = self._pg_search(record, q, k, exact, ef_search)
        else:
            hits = exact_top_k(*self._unit_matrix(record), q, k, unit_rows=True)
        found = self.get_items([sha for sha, _ in hits])
        return [Neighbor(sha, sim, found.get(sha)) for sha, sim in hits]

    def _unit_matrix(self, record: ModelRecord) -> tuple[list[str], np.ndarray]:
        """The model's L2-normalised vectors, kept between searches while the row count is unchanged."""
        rows = self.count(record)
        cached = self._matrices.get(record.id)
        if cached is None or cached[0] != rows:
            hashes, matrix = self.all_vectors(record)
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            cached = (rows, hashes, matrix / np.where(norms == 0, 1.0, norms))
            self._matrices[record.id] = cached
        return cached[1], cached[2]

    def _pg_search(self, record: ModelRecord, q: np.ndarray, k: int, exact: bool, ef_search: int | None) -> list[tuple[str, float]]:
        table = self._pg_table(record)
        column = table.c[record.pg_column]
        distance = column.cosine_distance(q).label("distance")
        stmt = (
            sa.select(table.c.sha256, distance)
            .where(table.c.model_id == sa.literal_column(str(int(record.id))), column.is_not(None))  # literal: matches the partial index
            .order_by(distance)
            .limit(k)
        )
        with self.engine.begin() as conn:
            if exact:
                conn.execute(sa.text("SET LOCAL enable_indexscan = off"))
            else:
                conn.execute(sa.text(f"SET LOCAL hnsw.ef_search = {int(ef_search or max(100, 4 * k))}"))
            return [(sha, 1.0 - float(dist)) for sha, dist in conn.execute(stmt)]

    # ---- items ---------------------------------------------------------------------------------

    def put_items(self, items: Iterable[Item]) -> int:
        """Insert or refresh items (path, text and metadata follow the latest call), one statement per chunk."""
        now = db.utcnow()
        rows = {}
        for item in items:
            rows[check_hash(item.sha256)] = {
                "sha256": item.sha256, "kind": item.kind, "path": item.path, "text": item.text, "meta": item.meta, "created_at": now,
            }
        values = list(rows.values())
        insert = postgresql.insert if self.backend == "postgresql" else sqlite_insert
        with self.engine.begin() as conn:
            for chunk in _chunks(values, (db.SQLITE_MAX_PARAMS // 6) if self.backend == "sqlite" else 5000):
                stmt = insert(db.items).values(list(chunk))
                stmt = stmt.on_conflict_do_update(
                    index_elements=["sha256"], set_={"path": stmt.excluded.path, "text": stmt.excluded.text, "meta": stmt.excluded.meta}
                )
                conn.execute(stmt)
        return len(values)

    def get_items(self, hashes: Iterable[str]) -> dict[str, Item]:
        wanted = list(dict.fromkeys(hashes))
        t = db.items
        found: dict[str, Item] = {}
        with self.engine.connect() as conn:
            for chunk in _chunks(wanted, self.lookup_chunk):
                for row in conn.execute(sa.select(t).where(self._hash_filter(t, chunk))).mappings():
                    path = self._current_path(row["path"])
                    found[row["sha256"]] = Item(row["sha256"], row["kind"], path, row["text"], dict(row["meta"] or {}))
        return found

    def _current_path(self, stored: str | None) -> str | None:
        """An item path as it reads now: one written under a place this data root was moved or copied from is
        rebased onto the root (``DataRoot.resolve``); any other path, relative ones included, is kept as written."""
        if not stored or self.root is None or not Path(stored).is_absolute():
            return stored
        return str(self.root.resolve(stored))

    def item_count(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(db.items)).scalar_one()


def exact_top_k(hashes: list[str], matrix: np.ndarray, query: np.ndarray, k: int, unit_rows: bool = False) -> list[tuple[str, float]]:
    """Exact cosine top-k in numpy (``unit_rows``: the matrix rows are already L2-normalised)."""
    if not hashes or k <= 0:
        return []
    sims = matrix @ (query / np.linalg.norm(query))
    if not unit_rows:
        norms = np.linalg.norm(matrix, axis=1)
        sims = sims / np.where(norms == 0, 1.0, norms)
    k = min(k, len(hashes))
    top = np.argpartition(-sims, k - 1)[:k]
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(hashes[i], float(sims[i])) for i in top]


def as_of(value: dt.datetime) -> dt.datetime:
    """Timestamps come back naive from SQLite: they are UTC."""
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
