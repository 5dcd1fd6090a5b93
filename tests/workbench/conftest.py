"""Workbench fixtures: a small app over a throwaway data root, and a live loopback server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aesthetic_platform.workbench.app import create_app

PROMPTS_CSV = b"text,palette\nA red poster of a cat,red\nA blue poster of a car,blue\nA gold sneaker poster,gold\n"
#: 64x64 images keep every render to a few milliseconds
SMALL = {"pixel_budget": 64 * 64, "batch_size": 4}
SERVER_START_S = 10.0


def fake_scorer(images, prompt):
    """A stand-in scorer whose numbers are easy to recognise: mean brightness of each image."""
    return [sum(image.convert("L").getdata()) / (255.0 * image.width * image.height) for image in images]


@pytest.fixture
def client(data_root) -> Iterator[TestClient]:
    with TestClient(create_app(data_root, "alice", scorer="auto")) as test_client:
        yield test_client


@pytest.fixture
def ready(client) -> TestClient:
    """Prompts uploaded, poster renderer initialised, first prompt current."""
    assert client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")}).status_code == 200
    assert client.post("/init_model", json=SMALL).status_code == 200
    assert client.post("/get_next_prompt").json()["done"] is False
    return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=SERVER_START_S)
