"""Alembic migrations of the embedding and label store (run by ``aesthetic db upgrade`` or on first use)."""
