"""The store's schema, engines and migrations (SQLAlchemy 2 Core + Alembic).

One schema for both backends. On SQLite vectors are float32 blobs in ``embeddings.vector``;
on Postgres each embedding dimension gets its own pgvector column (``vec_<d>`` or
``halfvec_<d>``), added when a model of that dimension is first registered, with one
partial HNSW cosine index per model where pgvector allows it.
"""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "aesthetic_store_version"
SQLITE_MAX_PARAMS = 32766
POSTGRES_MAX_PARAMS = 65535

metadata = sa.MetaData()

embedding_models = sa.Table(
    "embedding_models",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("dimension", sa.Integer, nullable=False),
    sa.Column("dtype", sa.String(16), nullable=False),
    sa.Column("modality", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "version", name="uq_embedding_models_name_version"),
)

embeddings = sa.Table(
    "embeddings",
    metadata,
    sa.Column("model_id", sa.Integer, sa.ForeignKey("embedding_models.id"), primary_key=True),
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("vector", sa.LargeBinary, nullable=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("sha256", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("path", sa.Text, nullable=True),
    sa.Column("text", sa.Text, nullable=True),
    sa.Column("meta", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("item_sha256", sa.String(64), sa.ForeignKey("items.sha256"), nullable=False),
    sa.Column("task", sa.String(100), nullable=False),
    sa.Column("annotator", sa.String(100), nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_labels_task_item_annotator", "task", "item_sha256", "annotator", "created_at"),
)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> sa.Engine:
    """An engine for ``url``; SQLite files get their folder, WAL and foreign keys."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported store URL {parsed.render_as_string(hide_password=True)}: use sqlite:/// or postgresql+psycopg://")
    engine = sa.create_engine(url, pool_pre_ping=True)
    sa.event.listen(engine, "connect", _pgvector_types)
    return engine


def _pgvector_types(dbapi_connection, _record) -> None:
    """numpy arrays in and out of vector/halfvec in psycopg's binary format; skipped until the extension exists."""
    from pgvector.psycopg import register_vector

    try:
        register_vector(dbapi_connection)
    except Exception:  # noqa: BLE001 - no vector type yet: the first migration creates it, and Store.open reconnects
        pass
    finally:
        dbapi_connection.rollback()  # leave the new connection idle, outside the type look-up's transaction


def alembic_config(connection: sa.Connection) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None  # the package ships its migrations
    return head


def current_revision(engine: sa.Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_revision()


_UPGRADED: set[str] = set()
_UPGRADE_LOCK = threading.Lock()


def upgrade(engine: sa.Engine, force: bool = False) -> str:
    """Bring the database to the head revision (idempotent); returns the head."""
    key = engine.url.render_as_string(hide_password=False)
    with _UPGRADE_LOCK:
        head = head_revision()
        if not force and key in _UPGRADED:
            return head
        if current_revision(engine) != head:
            with engine.begin() as connection:
                command.upgrade(alembic_config(connection), "head")
        _UPGRADED.add(key)
        return head
