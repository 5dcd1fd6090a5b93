"""Alembic environment: always runs on the connection the store hands over (online only)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from aesthetic_platform.embeddings.db import VERSION_TABLE, metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run store migrations through aesthetic_platform.embeddings.db.upgrade (or `aesthetic db upgrade`)")

if connection.dialect.name == "postgresql":
    # two processes upgrading one database at once wait for each other
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(7416310021)"))

context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
