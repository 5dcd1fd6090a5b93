"""embedding models, embeddings keyed by (model, sha256), items, append-only labels

Revision ID: 0001_store
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_store"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.create_table(
        "embedding_models",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("version", sa.String(200), nullable=False),
        sa.Column("dimension", sa.Integer, nullable=False),
        sa.Column("dtype", sa.String(16), nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("name", "version", name="uq_embedding_models_name_version"),
    )
    op.create_table(
        "embeddings",
        sa.Column("model_id", sa.Integer, sa.ForeignKey("embedding_models.id"), primary_key=True),
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("vector", sa.LargeBinary, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "items",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("text", sa.Text, nullable=True),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("item_sha256", sa.String(64), sa.ForeignKey("items.sha256"), nullable=False),
        sa.Column("task", sa.String(100), nullable=False),
        sa.Column("annotator", sa.String(100), nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_labels_task_item_annotator", "labels", ["task", "item_sha256", "annotator", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_labels_task_item_annotator", table_name="labels")
    op.drop_table("labels")
    op.drop_table("items")
    op.drop_table("embeddings")
    op.drop_table("embedding_models")
