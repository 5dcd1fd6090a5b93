"""Configuration of the embedding and label store and of the embedders (one place, no Dagster).

The Dagster side subclasses these models (``class X(dg.Config, EmbeddingJobSettings)``), so
the launchpad shows exactly these fields and defaults.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field

from aesthetic_platform.paths import DataRoot

DB_URL_ENV = "AESTHETIC_DB_URL"

EmbedderKind = Literal["minilm", "student_image", "student_text", "openai"]


class EmbeddingStoreConfig(BaseModel):
    """Where the store lives and how big one statement may get."""

    db_url: str = Field(
        default="",
        description="SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…); empty means $AESTHETIC_DB_URL, "
        "else SQLite at $AESTHETIC_HOME/db/store.db.",
    )
    lookup_chunk: int = Field(default=5000, ge=1, description="Hashes per lookup statement (capped by the backend's parameter limit).")
    write_chunk: int = Field(default=2000, ge=1, description="Rows per INSERT statement (capped by the backend's parameter limit).")

    def resolved_url(self, root: DataRoot | None = None) -> str:
        if self.db_url:
            return self.db_url
        if env := os.environ.get(DB_URL_ENV):
            return env
        return (root or DataRoot.from_env()).db_url


class EmbedderSettings(BaseModel):
    """Which embedder, and its knobs. Every embedder has a stable model id stored with its vectors."""

    embedder: EmbedderKind = Field(
        default="minilm",
        description="minilm: packaged all-MiniLM-L6-v2 (text, 384-d, offline); student_image / student_text: the towers of a saved "
        "student model; openai: any OpenAI-compatible /embeddings endpoint.",
    )
    model_path: str = Field(default="", description="Saved student model folder for student_*; empty means the data root's champion.")
    endpoint_model: str = Field(default="", description="Model name on the endpoint (openai); empty means $AESTHETIC_EMBEDDING_MODEL.")
    base_url: str = Field(
        default="", description="OpenAI-compatible base URL (openai); empty means $AESTHETIC_EMBEDDING_BASE_URL or $OPENAI_BASE_URL."
    )
    dimension: int = Field(default=0, ge=0, description="Expected vector size (openai); 0 means ask the endpoint once and record it.")
    timeout_s: float = Field(default=60.0, gt=0, description="Per-request timeout (openai).")
    max_attempts: int = Field(default=4, ge=1, description="Attempts per request, SDK retries with backoff (openai).")
    batch_size: int = Field(default=64, ge=1, description="Inputs per embedder call.")
    device: str = Field(default="", description="torch device for local embedders; empty means cuda when available, else cpu.")


class EmbeddingJobSettings(EmbedderSettings):
    """An embedding run: the embedder plus how to treat failures."""

    fail_on_errors: bool = Field(
        default=False, description="Fail the run when some items could not be embedded (they are reported and stored nowhere either way)."
    )


class ImageEmbeddingSettings(EmbeddingJobSettings):
    """Embedding the candidate images of a batch: the student's image tower by default."""

    embedder: EmbedderKind = Field(
        default="student_image", description="student_image (default: the champion's image tower) or another embedder kind."
    )


class PromptEmbeddingSettings(EmbeddingJobSettings):
    """Embedding the prompts of a batch: the packaged MiniLM by default."""
