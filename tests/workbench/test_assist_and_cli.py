"""The champion-scorer convention, and the `aesthetic workbench` command."""

from __future__ import annotations

import sys
import types

from typer.testing import CliRunner

from aesthetic_platform.cli import app as cli
from aesthetic_platform.registry import champion_dir as champion_folder
from aesthetic_platform.workbench.assist import _dimension_values, load_champion


class _FakeChampion:
    """Stands in for aesthetic_platform.scoring.Scorer: per-dimension values for each image."""

    loaded_from = None

    @classmethod
    def from_pretrained(cls, folder):
        cls.loaded_from = folder
        return cls()

    def score(self, images, prompts):
        return [{"total": float(i), "color": 0.0} for i in range(len(images))]


def test_no_champion_means_unavailable_with_the_reason(data_root):
    scorer, status = load_champion(data_root)
    assert scorer is None and not status.available and str(champion_folder(data_root)) in status.reason
    champion_folder(data_root).mkdir(parents=True)  # an empty folder is not a saved model
    assert load_champion(data_root)[0] is None


def test_per_dimension_results_in_either_layout():
    assert _dimension_values([{"total": 1, "color": 0}, {"total": 2.5}], 2) == [1.0, 2.5]


def _save_champion(data_root) -> None:
    champion_folder(data_root).mkdir(parents=True)
    (champion_folder(data_root) / "config.json").write_text("{}")


def test_registered_champion_is_loaded_lazily_and_gives_total(data_root, monkeypatch):
    _save_champion(data_root)
    monkeypatch.setitem(sys.modules, "aesthetic_platform.scoring", types.SimpleNamespace(Scorer=_FakeChampion))
    scorer, status = load_champion(data_root)
    assert status.available and _FakeChampion.loaded_from == champion_folder(data_root)
    assert scorer.score([object(), object(), object()], "a poster") == [0.0, 1.0, 2.0]
    assert scorer.name == f"champion:{champion_folder(data_root)}"  # a folder placed by hand: no record of its version


def test_the_assist_scorer_is_named_by_the_version_it_was_promoted_as(data_root, monkeypatch):
    """Selections record which model gave their assist scores: records from before and after a promotion differ."""
    import json

    _save_champion(data_root)
    info = {"registered_model": "aesthetic-scorer", "version": "3", "run_key": "0a1b2c3d4e5f", "model_dir": "models/runs/x"}
    (champion_folder(data_root) / "champion.json").write_text(json.dumps(info))
    monkeypatch.setitem(sys.modules, "aesthetic_platform.scoring", types.SimpleNamespace(Scorer=_FakeChampion))
    scorer, status = load_champion(data_root)
    assert scorer.name == status.name == "aesthetic-scorer v3 (champion, run key 0a1b2c3d4e5f)"


def test_champion_that_fails_to_load_is_unavailable_not_faked(data_root, monkeypatch):
    _save_champion(data_root)

    class Broken:
        @classmethod
        def from_pretrained(cls, folder):
            raise OSError("config.json missing")

    monkeypatch.setitem(sys.modules, "aesthetic_platform.scoring", types.SimpleNamespace(Scorer=Broken))
    scorer, status = load_champion(data_root)
    assert scorer is None and "config.json missing" in status.reason


def test_workbench_command_serves_the_app_on_loopback(home, monkeypatch):
    import uvicorn

    calls = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.update(app=app, **kwargs))
    result = CliRunner().invoke(cli, ["workbench", "--home", str(home), "--port", "8123", "--annotator", "carol"])
    assert result.exit_code == 0, result.output
    assert calls["host"] == "127.0.0.1" and calls["port"] == 8123
    assert calls["app"].state.workbench.annotator == "carol"
    assert "http://127.0.0.1:8123/" in result.output
