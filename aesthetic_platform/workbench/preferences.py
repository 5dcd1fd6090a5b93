"""Human test pairs from the workbench: every golden image beats every bad one of its batch.

A person judges the whole image, so the pairs are on ``total``; the annotator is
kept on every pair so agreement between people (and per-person accuracy of the
student) can be measured. Ties (several golden) and all-bad batches yield pairs
only between the two groups: golden vs golden and bad vs bad say nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.schemas import HUMAN_PREFERENCES, HumanPreference
from aesthetic_platform.workbench.selections import Selection, active_selections, read_log

HUMAN_TABLE = "human_preferences"
PAIR_ID_HEX = 15
JUDGED_DIMENSION = "total"


def _pair_id(submission_id: str, winner: int, loser: int) -> str:
    return "h" + hashlib.sha256(f"{submission_id}|{winner}|{loser}".encode()).hexdigest()[:PAIR_ID_HEX]


def preference_rows(selections: list[Selection]) -> list[HumanPreference]:
    rows: list[HumanPreference] = []
    for selection in selections:
        paths = {image.seed: image.path for image in selection.images}
        for winner in selection.golden_seeds:
            for loser in selection.bad_seeds:
                rows.append(
                    HumanPreference(
                        pair_id=_pair_id(selection.submission_id, winner, loser), prompt_id=selection.prompt_id,
                        prompt=selection.prompt, prompt_hash=selection.prompt_hash,
                        winner_path=paths[winner], loser_path=paths[loser], winner_seed=winner, loser_seed=loser,
                        winner_ratio=selection.ratio, loser_ratio=selection.ratio, dimension=JUDGED_DIMENSION,
                        annotator=selection.annotator, source="workbench", created_at=selection.submitted_at,
                    )
                )
    return rows


def build_human_preferences(root: DataRoot) -> tuple[Path, list[HumanPreference], list[Selection]]:
    """Rebuild the ``human_preferences`` table from the selections log (undo lines honoured)."""
    selections = active_selections(read_log(root))
    rows = preference_rows(selections)
    path = HUMAN_PREFERENCES.write(rows, root.table(HUMAN_TABLE))
    return path, rows, selections


def load_human_preferences(root: DataRoot) -> list[HumanPreference]:
    """The human pairs (empty before the first workbench pick), image paths read against ``root``."""
    path = root.table(HUMAN_PREFERENCES.name)
    return HUMAN_PREFERENCES.rows(HUMAN_PREFERENCES.read(path), root) if path.exists() else []
