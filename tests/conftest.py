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


#: Variables ``mlflow.set_tracking_uri`` / ``set_registry_uri`` write into ``os.environ`` in-process.
MLFLOW_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_uri(monkeypatch: pytest.MonkeyPatch):
    """A test that activates MLflow leaves its store's URI in the environment; the next test's
    subprocesses (``aesthetic demo``) would inherit it and log into that other root's store.
    Each test starts with the user's environment, and what it sets is undone afterwards."""
    for name in MLFLOW_URI_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield
    for name in MLFLOW_URI_VARIABLES:
        os.environ.pop(name, None)


@pytest.fixture(autouse=True, scope="session")
def _no_dead_definitions_state():
    """Dagster keeps "the current definitions-state storage" in a context variable: entering an
    instance sets it, leaving restores what was there before. Instances left out of order (the
    garbage collector finalizing an abandoned ``with instance_for_test()`` after a later one was
    left, at any moment, even in the middle of another test) restore a storage whose instance is
    gone, and the next definitions load fails with "Attempted to resolve undefined DagsterInstance
    weakref". For the whole session a storage without a living instance reads as no storage; a
    live one is kept."""
    from dagster._core.storage.defs_state import base

    original = base.DefsStateStorage.__dict__["get"]

    def get_living(cls):
        storage = original.__func__(cls)
        owner = getattr(storage, "_instance_weakref", None)
        return None if storage is not None and (owner is None or owner() is None) else storage

    base.DefsStateStorage.get = classmethod(get_living)
    yield
    base.DefsStateStorage.get = original
