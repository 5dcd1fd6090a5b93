"""The shared embedding and label store (seed 003).

Vectors keyed by (embedding model, content sha256), items, append-only multi-annotator
labels, embedders behind one interface, and the batched dataset flow. SQLite under the
data root by default, Postgres + pgvector when ``AESTHETIC_DB_URL`` names one.
"""

from aesthetic_platform.lazy import lazy_exports

_EXPORTS = {
    "DB_URL_ENV": "config",
    "EmbedderSettings": "config",
    "EmbeddingJobSettings": "config",
    "EmbeddingStoreConfig": "config",
    "DimensionMismatchError": "store",
    "Item": "store",
    "ModelRecord": "store",
    "ModelSpec": "store",
    "Neighbor": "store",
    "Store": "store",
    "StoreError": "store",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
