"""An OpenAI-compatible moderation endpoint (``moderations.create``) for prompts and images.

The client comes from the shared factory in :mod:`aesthetic_platform.llm`: the ``openai``
SDK does the retries (429, 5xx, timeouts, lost connections, ``Retry-After`` honoured)
and ``count_attempts`` records how many HTTP attempts each call took. Anything that
still goes wrong — the endpoint down after the retries, an error answer, a reply that
does not parse or has the wrong number of results — comes back as an outcome with an
``error`` and no verdict: the audit then marks the item ``unaudited``, never ``passed``.
"""

from __future__ import annotations

import base64
import json
import mimetypes
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aesthetic_platform.audit.config import DEFAULT_MODERATION_MODEL
from aesthetic_platform.llm import EndpointSettings, count_attempts, openai_client

BASE_URL_ENV = "AESTHETIC_MODERATION_BASE_URL"
MODEL_ENV = "AESTHETIC_MODERATION_MODEL"
MAX_ERROR = 500


@dataclass(frozen=True)
class ModerationOutcome:
    flagged: bool = False
    categories: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    error: str = ""
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return not self.error


def _as_dict(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if hasattr(value, "model_dump"):
        return value.model_dump(by_alias=True, exclude_none=True)
    return dict(value)


class ModerationClient:
    """One moderation model on one endpoint; ``thresholds`` flag a category at or above a score."""

    def __init__(self, settings: EndpointSettings, thresholds: Mapping[str, float] | None = None) -> None:
        self.settings = settings
        self.model = settings.resolved_model(DEFAULT_MODERATION_MODEL, MODEL_ENV)
        self.thresholds = dict(thresholds or {})
        self._client = openai_client(settings, BASE_URL_ENV)

    @property
    def name(self) -> str:
        return f"moderation:{self.model}"

    def _outcome(self, result: Any, attempts: int) -> ModerationOutcome:
        categories = _as_dict(getattr(result, "categories", None))
        scores = {k: float(v) for k, v in _as_dict(getattr(result, "category_scores", None)).items() if v is not None}
        flagged_by_threshold = [c for c, t in self.thresholds.items() if scores.get(c, 0.0) >= t]
        names = sorted({c for c, hit in categories.items() if hit} | set(flagged_by_threshold))
        flagged = bool(getattr(result, "flagged", False)) or bool(names)
        return ModerationOutcome(flagged=flagged, categories=names, scores=scores, attempts=attempts)

    def _create(self, inputs: Any, expected: int) -> list[ModerationOutcome]:
        with count_attempts() as attempts:
            try:
                response = self._client.moderations.create(model=self.model, input=inputs)
                results = list(response.results or [])
                if len(results) != expected:
                    raise ValueError(f"the endpoint returned {len(results)} results for {expected} inputs")
                return [self._outcome(r, attempts.count) for r in results]
            except Exception as exc:  # noqa: BLE001 - every failure becomes 'unaudited' with its message, never a pass
                error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR]
                return [ModerationOutcome(error=error, attempts=attempts.count)] * expected

    def texts(self, texts: Sequence[str]) -> list[ModerationOutcome]:
        """One request for all ``texts`` (the endpoint answers one result per input)."""
        return self._create(list(texts), len(texts)) if texts else []

    def image(self, path: str | Path) -> ModerationOutcome:
        """One request with the image as a base64 data URL (omni moderation models)."""
        path = Path(path)
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError as exc:
            return ModerationOutcome(error=f"cannot read {path}: {exc}")
        mime = mimetypes.guess_type(path.name)[0] or "image/png"
        return self._create([{"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}], 1)[0]

    def fingerprint(self) -> str:
        return json.dumps({"model": self.model, "thresholds": self.thresholds}, sort_keys=True)
