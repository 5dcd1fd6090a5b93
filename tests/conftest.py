"""Shared fixtures: an isolated data root per test, offline hubs, quiet Dagster."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
# Nothing a test does may touch the user's data root: default to a throwaway one.
os.environ["AESTHETIC_HOME"] = _SESSION_HOME = tempfile.mkdtemp(prefix="aesthetic-test-home-")
atexit.register(shutil.rmtree, _SESSION_HOME, ignore_errors=True)

REPO_ROOT = Path(__file__).resolve().parents[1]
TEST_OUTPUT = REPO_ROOT / "test-output"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh AESTHETIC_HOME for one test."""
    root = tmp_path / "home"
    monkeypatch.setenv("AESTHETIC_HOME", str(root))
    return root


@pytest.fixture
def data_root(home: Path):
    from aesthetic_platform.paths import DataRoot

    return DataRoot.from_env(home).ensure()


@pytest.fixture(scope="session")
def test_output() -> Path:
    """Artifacts a reviewer may want to look at (screenshots, reports) land here."""
    TEST_OUTPUT.mkdir(exist_ok=True)
    return TEST_OUTPUT


@pytest.fixture(autouse=True)
def _no_dead_definitions_state():
    """Dagster keeps "the current definitions-state storage" in a context variable: entering an
    instance sets it, leaving restores what was there before. Instances left out of order (the
    garbage collector finalizing an abandoned ``with instance_for_test()`` after a later one was
    left) restore a storage whose instance is gone, and the next definitions load in the process
    fails with "Attempted to resolve undefined DagsterInstance weakref". Each test starts without
    such a dead storage; a live one is kept."""
    import sys

    if "dagster" in sys.modules:
        from dagster._core.storage.defs_state.base import DefsStateStorage, _current_storage

        storage = DefsStateStorage.get()
        owner = getattr(storage, "_instance_weakref", None)
        if storage is not None and (owner is None or owner() is None):
            _current_storage.set(None)
    yield
