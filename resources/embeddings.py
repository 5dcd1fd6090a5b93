"""The shared embedding and label store as a Dagster resource."""


import dagster as dg

from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store
from aesthetic_platform.paths import DataRoot


class EmbeddingStoreResource(dg.ConfigurableResource, EmbeddingStoreConfig):
    """``EmbeddingStoreConfig`` as a resource (same fields, same defaults): SQLite under the data root, or
    Postgres + pgvector when ``db_url`` / ``$AESTHETIC_DB_URL`` names one."""

    def open(self, root: DataRoot | None = None) -> Store:
        return Store.open(EmbeddingStoreConfig.model_validate(self.model_dump(include=set(EmbeddingStoreConfig.model_fields))), root)
