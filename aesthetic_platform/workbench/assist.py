"""The assist score: the registered aesthetic scorer's ``total``, or nothing at all.

The champion scorer is the folder ``<data root>/models/champion`` holding a saved
model (``config.json`` + weights, loadable by
``aesthetic_platform.scoring.Scorer.from_pretrained``; its ``score(images, prompts)``
returns one ``{dimension: value}`` dict per image). When it is missing or cannot
be loaded the workbench says *why* and shows no number: a placeholder score would
anchor the person's judgement on noise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.prompts.records import PromptError
from aesthetic_platform.registry import champion_dir, has_champion, promotion_record

ASSIST_DIMENSION = "total"

ScoreFn = Callable[[list[Image.Image], str], Sequence[float | None]]


@dataclass(frozen=True)
class AssistScorer:
    """A named scoring function: images of one prompt -> one float per image (larger is better)."""

    name: str
    score: ScoreFn


@dataclass(frozen=True)
class AssistStatus:
    available: bool
    reason: str
    name: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"available": self.available, "reason": self.reason, "name": self.name}


def _dimension_values(result: Sequence[Mapping[str, float]], count: int) -> list[float]:
    """The ``total`` of each image from ``Scorer.score``'s per-image dicts."""
    values = [row[ASSIST_DIMENSION] for row in result]
    if len(values) != count:
        raise ValueError(f"scorer returned {len(values)} '{ASSIST_DIMENSION}' values for {count} images")
    return [float(v) for v in values]


def load_champion(root: DataRoot) -> tuple[AssistScorer | None, AssistStatus]:
    """Load the registered champion scorer if there is one; otherwise say why it is unavailable."""
    folder = champion_dir(root)
    if not has_champion(root):
        return None, AssistStatus(False, f"no registered aesthetic scorer (no champion model at {folder})")
    from aesthetic_platform.scoring import Scorer
    try:
        model = Scorer.from_pretrained(folder)
    except Exception as exc:  # noqa: BLE001 - any load failure means "unavailable", shown to the person
        return None, AssistStatus(False, f"champion model at {folder} failed to load: {exc}")
    name = champion_name(root)

    def score(images: list[Image.Image], prompt: str) -> list[float | None]:
        try:
            result = model.score(images, [prompt] * len(images))
        except PromptError:  # e.g. longer than the model reads: no number rather than one for a cut prompt
            return [None] * len(images)
        return list(_dimension_values(result, len(images)))

    return AssistScorer(name, score), AssistStatus(True, "registered champion scorer", name)


def champion_name(root: DataRoot) -> str:
    """Which model the assist scores come from, as each selection records it: the registered model and version
    the champion folder was promoted as (its ``champion.json``), so records made before and after a promotion
    tell their models apart; ``champion:<folder>`` for a folder placed by hand."""
    folder = champion_dir(root)
    record = promotion_record(folder)
    if record is None:
        return f"champion:{folder}"
    return f"{record['registered_model']} v{record['version']} (champion, run key {record['run_key']})"


def given_scorer(scorer: AssistScorer | ScoreFn) -> tuple[AssistScorer, AssistStatus]:
    """A scorer handed in by the caller (another model, or a test double)."""
    if not isinstance(scorer, AssistScorer):
        scorer = AssistScorer(getattr(scorer, "__name__", type(scorer).__name__), scorer)
    return scorer, AssistStatus(True, "scorer given at start-up", scorer.name)
