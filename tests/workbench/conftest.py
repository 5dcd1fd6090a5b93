"""Workbench fixtures: a small app over a throwaway data root, and a live loopback server."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from aesthetic_platform.workbench.app import create_app
from tests.fixtures.servers import serving

PROMPTS_CSV = b"text,palette\nA red poster of a cat,red\nA blue poster of a car,blue\nA gold sneaker poster,gold\n"
#: 64x64 images keep every render to a few milliseconds
SMALL = {"pixel_budget": 64 * 64, "seeds_per_batch": 4}
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



@contextlib.contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 in a thread (its lifespan runs); yields its base URL."""
    with serving(app, "workbench", startup_timeout_s=SERVER_START_S, lifespan="auto") as url:
        yield url
