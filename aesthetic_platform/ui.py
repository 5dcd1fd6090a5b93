"""``aesthetic ui``: the Dagster UI and the MLflow UI side by side, stopped together.

The MLflow UI serves the store the platform logs into: this root's SQLite, or the shared
database ``MLFLOW_TRACKING_URI`` names; a tracking server has its own UI, so then only
Dagster is started.

Each server runs in its own process group so that one Ctrl-C here reaches both and
nothing is left listening: ``dagster dev`` gets SIGINT (it then stops its webserver,
daemon and code servers), MLflow gets SIGTERM; anything still alive after the grace
period is killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aesthetic_platform.paths import DataRoot
from aesthetic_platform.tracking.store import TrackingConfig


@dataclass
class Service:
    name: str
    command: list[str]
    url: str
    health_path: str
    stop_signal: int
    process: subprocess.Popen[bytes] | None = None

    def start(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        handle = open(log, "ab")
        self.process = subprocess.Popen(
            self.command, env=env, cwd=cwd, stdout=handle, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=_default_sigint,
        )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=2) as reply:
                return reply.status == 200
        except OSError:
            return False

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_s: float) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            _signal_group(self.process.pid, self.stop_signal)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode


def _default_sigint() -> None:
    """Children started from non-interactive shells inherit SIGINT=ignored; undo that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _bin(name: str) -> str:
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def build_services(
    root: DataRoot, repo: Path, host: str, dagster_port: int, mlflow_port: int, tracking: TrackingConfig | None = None
) -> list[Service]:
    """The Dagster UI, and an MLflow UI over the store the platform logs into: this root's SQLite by default, or the
    database ``tracking`` names. A tracking server (http) serves its own UI, so none is started for it."""
    workspace = repo / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "aesthetic_platform.definitions"]
    # resolving the store rebases a moved or copied root first: the MLflow UI must show this root's artifacts
    tracking = tracking or TrackingConfig.for_root(root)
    services = [
        Service(
            "Dagster", [_bin("dagster"), "dev", *target, "-h", host, "-p", str(dagster_port)],
            f"http://{host}:{dagster_port}", "/server_info", signal.SIGINT,
        )
    ]
    if not tracking.is_server:
        services.append(Service(
            "MLflow",
            [
                _bin("mlflow"), "server", "--host", host, "--port", str(mlflow_port), "--workers", "1",
                "--backend-store-uri", tracking.tracking_uri,
                "--default-artifact-root", str(root.mlflow_artifacts),
            ],
            f"http://{host}:{mlflow_port}", "/health", signal.SIGTERM,
        ))
    return services


def run_services(services: list[Service], env: dict[str, str], cwd: Path, logs: Path, on_ready, startup_timeout_s: float = 120) -> int:
    """Start all, report when each answers, block until Ctrl-C (or a child dies), stop all."""
    exit_code = 0
    try:
        for service in services:
            service.start(env, cwd, logs / f"{service.name.lower()}.log")
        pending = list(services)
        deadline = time.monotonic() + startup_timeout_s
        while pending:
            for service in list(pending):
                if not service.alive():
                    raise RuntimeError(f"{service.name} exited early; see {logs / (service.name.lower() + '.log')}")
                if service.healthy():
                    on_ready(service)
                    pending.remove(service)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{', '.join(s.name for s in pending)} did not answer within {startup_timeout_s:.0f}s")
            time.sleep(0.5)
        while all(service.alive() for service in services):
            time.sleep(0.5)
        exit_code = 1
    except KeyboardInterrupt:
        exit_code = 0
    finally:
        for service in services:
            service.stop(grace_s=20)
    return exit_code
