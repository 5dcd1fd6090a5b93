"""The layer contracts (``.importlinter``) hold, and they fail on a real break.

Each break is made in a copy of the source tree, the way a careless change would make it:
a lazy import inside a function body, an outer layer reaching up, a cycle between core
packages. ``lint-imports`` runs on the copy and must name the broken contract.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _copy_tree(tmp_path: Path) -> Path:
    for name in ("aesthetic_platform", "assets", "resources", "jobs"):
        shutil.copytree(REPO / name, tmp_path / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".importlinter", tmp_path / ".importlinter")
    return tmp_path


def _lint(tree: Path) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree), "HOME": str(tree)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, env=env, capture_output=True, text=True, timeout=120)


def _append(path: Path, code: str) -> None:
    path.write_text(path.read_text() + "\n\n" + code + "\n")


def test_the_real_tree_keeps_every_contract(tmp_path):
    result = _lint(_copy_tree(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


BREAKS = {
    "a lazy import of the code location in the core CLI": (
        "aesthetic_platform/cli.py",
        "def _sneaky():\n    from aesthetic_platform import definitions\n\n    return definitions",
        "The core never imports Dagster or the orchestration layer",
    ),
    "dagster itself in a core module": (
        "aesthetic_platform/scoring.py",
        "def _sneaky():\n    import dagster\n\n    return dagster",
        "The core never imports Dagster or the orchestration layer",
    ),
    "a resource reaching up to the assets": (
        "resources/judge.py",
        "def _sneaky():\n    from aesthetic_platform.assets import judging\n\n    return judging",
        "resources <- assets <- jobs <- definitions",
    ),
    "MLflow outside tracking/": (
        "aesthetic_platform/evaluation/run.py",
        "def _sneaky():\n    import mlflow\n\n    return mlflow",
        "Only aesthetic_platform.tracking talks to MLflow",
    ),
    "a cycle between training and evaluation": (
        "aesthetic_platform/training/loop.py",
        "def _sneaky():\n    from aesthetic_platform.evaluation import run\n\n    return run",
        "No dependency cycle between sibling packages or modules",
    ),
}


@pytest.mark.parametrize("what", list(BREAKS))
def test_a_deliberate_violation_breaks_its_contract(tmp_path, what):
    module, code, contract = BREAKS[what]
    tree = _copy_tree(tmp_path)
    _append(tree / module, code)
    result = _lint(tree)
    assert result.returncode != 0, result.stdout
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
