"""Hostile prompt files on the workbench upload, and prompts the assist model cannot read whole."""

from __future__ import annotations

import json

import pytest

from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.registry import champion_dir
from tests.workbench.conftest import PROMPTS_CSV, SMALL

HOSTILE = [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "top level", None, "nested too deeply"),
    ("huge.csv", b'text,style\nfine,"' + b"x" * 200_000 + b'"\n', "line 2", "style", "longer than 131,072 characters"),
    ("big-int.json", b"[" + b"1" * 5000 + b"]", "top level", None, "invalid JSON"),
    ("blank.csv", b"text\n   \n", "line 2", "text", "at least 1 character"),
    ("long.json", json.dumps(["y" * 2001]).encode(), "record 1", "text", "at most 2000 characters"),
    ("nul.json", json.dumps(["a\x00b"]).encode(), "record 1", "text", "control character U+0000"),
    ("binary.csv", bytes(range(256)), "line 2 (byte 128)", None, "not UTF-8"),
]


@pytest.mark.parametrize(("name", "content", "location", "field", "problem"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_prompt_file_is_a_422_naming_file_location_and_field(client, name, content, location, field, problem):
    reply = client.post("/upload_prompts", files={"file": (name, content, "text/plain")})
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["file"] == name and body["location"] == location and body["field"] == field
    assert name in body["detail"] and problem in body["detail"]
    good = client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
    assert good.status_code == 200 and good.json()["prompts"] == 3  # the server keeps answering


def test_too_large_upload_is_a_413_naming_the_file(client):
    from aesthetic_platform.workbench.app import MAX_UPLOAD_BYTES

    reply = client.post("/upload_prompts", files={"file": ("big.csv", b"text\n" + b"a" * MAX_UPLOAD_BYTES, "text/csv")})
    assert reply.status_code == 413 and reply.json()["file"] == "big.csv"


def test_a_prompt_longer_than_the_assist_model_reads_gets_no_score(data_root):
    from fastapi.testclient import TestClient

    from aesthetic_platform.workbench.app import create_app

    AestheticScorer(named_config("tiny")).save_pretrained(champion_dir(data_root))
    prompts = json.dumps(["a red poster " * 60, "a red poster"]).encode()  # ~180 tokens: more than the model reads
    with TestClient(create_app(data_root, "alice", scorer="auto")) as client:
        assert client.post("/upload_prompts", files={"file": ("p.json", prompts, "application/json")}).status_code == 200
        assert client.post("/init_model", json=SMALL).json()["assist"]["available"] is True
        client.post("/get_next_prompt")
        long_batch = client.post("/generate_batch")
        assert long_batch.status_code == 200, long_batch.text
        assert [image["score"] for image in long_batch.json()["images"]] == [None] * SMALL["seeds_per_batch"]
        client.post("/get_next_prompt")
        short_batch = client.post("/generate_batch").json()
        assert all(isinstance(image["score"], float) for image in short_batch["images"])
