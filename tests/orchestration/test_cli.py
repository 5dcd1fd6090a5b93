"""The CLI end to end, as a user runs it: subprocesses against a temp data root."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


def run(*args, home: Path, check=True):
    env = {**os.environ, "AESTHETIC_HOME": str(home)}
    return subprocess.run([AESTHETIC, *args], cwd=REPO, env=env, capture_output=True, text=True, check=check, timeout=300)


def test_demo_runs_the_whole_chain(tmp_path):
    home = tmp_path / "home"
    out = run("demo", "--home", str(home), "--batches", "4", "--prompts", "3", "--per-prompt", "3", "--pixel-budget", "4096",
              "--epochs", "1", home=home)
    assert "next steps" in out.stdout
    assert "held-out teacher pairs" in out.stdout and "same-ratio" in out.stdout and "best of N" in out.stdout
    assert (home / "models" / "champion" / "model.safetensors").exists()
    assert list((home / "reports").glob("eval-*/report.md"))
    # every dimension whose same-ratio CI does not clear chance is explained, in the report and on the console
    report = json.loads(next((home / "reports").glob("eval-*/report.json")).read_text())
    same_ratio = report["model"]["per_kind"]["same_ratio"]
    assert set(report["at_chance"]) == {d for d, a in same_ratio.items() if a["n"] and a["ci_low"] <= report["chance"]}
    assert all(f"why {dim} is at chance" in out.stdout for dim in report["at_chance"])
    manifest = pl.read_parquet(home / "tables" / "candidate_images" / "demo-0001.parquet")
    assert manifest.height == 3 * 3 * 2  # 3 prompts x 3 seeds x 2 ratios per prompt
    assert set(manifest["ratio"]) <= {"1:1", "3:4", "9:16", "4:3", "16:9"}
    ratios_seen = set(pl.read_parquet(list((home / "tables" / "candidate_images").glob("*.parquet")))["ratio"])
    assert ratios_seen == {"1:1", "3:4", "9:16", "4:3", "16:9"}  # balanced over the batches
    assert all(Path(p).exists() for p in manifest["path"])
    assert (home / "dagster" / "dagster.yaml").exists()
    # the run is in the instance the UI reads
    runs = list((home / "dagster").glob("history/runs/*.db")) + list((home / "dagster").glob("history/runs.db"))
    assert runs


def test_materialize_several_batches_from_the_cli(tmp_path):
    home = tmp_path / "home"
    run("materialize", "-b", "x1", "-b", "x2", "--prompts", "2", "--per-prompt", "2", "--pixel-budget", "4096", home=home)
    assert (home / "tables" / "candidate_images" / "x1.parquet").exists()
    assert (home / "tables" / "candidate_images" / "x2.parquet").exists()
    listed = run("batch", "list", home=home).stdout.split()
    assert listed == ["x1", "x2"]


def test_malformed_prompt_file_is_reported(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,palette\nok,red\n,blue\n")
    out = run("check-prompts", str(bad), home=tmp_path, check=False)
    assert out.returncode == 2
    assert "line 3" in out.stdout and "text" in out.stdout


def test_bad_batch_key_is_refused(tmp_path):
    out = run("materialize", "-b", "../escape", home=tmp_path, check=False)
    assert out.returncode != 0
    assert "invalid batch" in out.stdout + out.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_ui_starts_both_servers_on_loopback_and_stops_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    dagster_port, mlflow_port = _free_port(), _free_port()
    env = {**os.environ, "AESTHETIC_HOME": str(home)}
    process = subprocess.Popen(
        [AESTHETIC, "ui", "--dagster-port", str(dagster_port), "--mlflow-port", str(mlflow_port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and not (
            _answers(f"http://127.0.0.1:{dagster_port}/server_info") and _answers(f"http://127.0.0.1:{mlflow_port}/health")
        ):
            assert process.poll() is None, process.stdout.read()
            time.sleep(1)
        assert _answers(f"http://127.0.0.1:{dagster_port}/server_info")
        assert _answers(f"http://127.0.0.1:{mlflow_port}/health")
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "stopped Dagster and MLflow" in output
        time.sleep(1)
        assert not _answers(f"http://127.0.0.1:{dagster_port}/server_info")
        assert not _answers(f"http://127.0.0.1:{mlflow_port}/health")
    finally:
        if process.poll() is None:
            process.kill()
