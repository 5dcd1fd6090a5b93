"""The shared embedding and label store (seed 003).

Vectors keyed by (embedding model, content sha256), items, append-only multi-annotator
labels, embedders behind one interface, and the batched dataset flow. SQLite under the
data root by default, Postgres + pgvector when ``AESTHETIC_DB_URL`` names one.
"""

from aesthetic_platform.embeddings.config import DB_URL_ENV, EmbedderSettings, EmbeddingJobSettings, EmbeddingStoreConfig
from aesthetic_platform.embeddings.store import (
    DimensionMismatchError,
    Item,
    ModelRecord,
    ModelSpec,
    Neighbor,
    Store,
    StoreError,
)

__all__ = [
    "DB_URL_ENV",
    "DimensionMismatchError",
    "EmbedderSettings",
    "EmbeddingJobSettings",
    "EmbeddingStoreConfig",
    "Item",
    "ModelRecord",
    "ModelSpec",
    "Neighbor",
    "Store",
    "StoreError",
]
