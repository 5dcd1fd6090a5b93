"""`POST /score` on bad input and over budget: a JSON 4xx naming the file or field, never a 500."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.scoring import Scorer
from aesthetic_platform.serving import RequestLimits, create_app
from tests.fixtures.hostile_images import bomb_png, encoded, photo, png16

PROMPT = "a poster of an astronaut"


@pytest.fixture(scope="module")
def scorer(tmp_path_factory) -> Scorer:
    folder = tmp_path_factory.mktemp("model")
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return Scorer.from_pretrained(folder, device="cpu")


@pytest.fixture(scope="module")
def client(scorer) -> TestClient:
    limits = RequestLimits(max_files=4, max_request_bytes=2_000_000, max_image_pixels=4_000_000, max_total_pixels=6_000_000)
    return TestClient(create_app(scorer, {"name": "tiny"}, limits), raise_server_exceptions=False)


def png(size=(96, 64)) -> bytes:
    return encoded(photo(size), "PNG")


def files(*named: tuple[str, bytes]) -> list:
    return [("files", (name, data, "application/octet-stream")) for name, data in named]


def still_serving(client: TestClient) -> None:
    assert client.get("/health").json()["status"] == "ok"
    reply = client.post("/score", files=files(("fine.png", png())), data={"prompt": PROMPT})
    assert reply.status_code == 200, reply.text


@pytest.mark.parametrize(
    ("name", "content", "status", "problem"),
    [
        ("bomb.png", bomb_png(), 413, "12000x12000"),
        ("cut.png", png()[:2000], 422, "cannot be decoded"),
        ("notes.png", b"just text", 422, "not an image in an accepted format"),
        ("empty.png", b"", 422, "not an image in an accepted format"),
    ],
)
def test_a_bad_file_is_refused_naming_it_and_the_server_keeps_answering(client, name, content, status, problem):
    reply = client.post("/score", files=files(("ok.png", png()), (name, content)), data={"prompt": PROMPT})
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["file"] == name and body["index"] == 1 and body["field"] == "files"
    assert name in body["detail"] and problem in body["detail"]
    still_serving(client)


@pytest.mark.parametrize(
    ("prompts", "index", "problem"),
    [([""], 0, "empty"), (["  \n "], 0, "empty"), (["ok", "x" * 2001], 1, "the limit is 2,000"), (["a red poster " * 60], 0, "128 tokens")],
)
def test_a_bad_prompt_is_refused_naming_the_field_and_index(client, prompts, index, problem):
    reply = client.post("/score", files=files(("a.png", png()), ("b.png", png())), data={"prompt": prompts})
    assert reply.status_code == 422, reply.text
    body = reply.json()
    assert body["field"] == "prompt" and body["index"] == index and problem in body["detail"]
    still_serving(client)


def test_too_many_files_is_refused(client):
    reply = client.post("/score", files=files(*[(f"{i}.png", png((16, 16))) for i in range(5)]), data={"prompt": PROMPT})
    assert 400 <= reply.status_code < 500 and "files" in reply.json()["detail"].lower()
    still_serving(client)


def test_the_request_pixel_budget_is_checked_from_headers(client):
    big = encoded(Image.new("RGB", (1600, 1250), (200, 30, 30)), "PNG")  # 2,000,000 pixels each, a few KB
    reply = client.post("/score", files=files(*[(f"{i}.png", big) for i in range(4)]), data={"prompt": PROMPT})
    assert reply.status_code == 413, reply.text
    assert reply.json()["field"] == "files" and "6,000,000" in reply.json()["detail"]
    still_serving(client)


def test_a_body_over_the_byte_budget_is_refused(client):
    noise = np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    heavy = encoded(Image.fromarray(noise), "PNG")
    assert len(heavy) > 2_000_000
    reply = client.post("/score", files=files(("heavy.png", heavy)), data={"prompt": PROMPT})
    assert reply.status_code == 413 and "2,000,000 bytes" in reply.json()["detail"]
    still_serving(client)


def test_a_streamed_body_without_length_is_cut_off_at_the_budget(scorer):
    app = create_app(scorer, {}, RequestLimits(max_request_bytes=50_000))

    async def chunks():
        yield b"--x\r\nContent-Disposition: form-data; name=\"files\"; filename=\"s.png\"\r\n\r\n"
        for _ in range(100):
            yield b"\0" * 1000

    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            headers = {"content-type": "multipart/form-data; boundary=x"}
            return await http.post("/score", content=chunks(), headers=headers)

    reply = asyncio.run(post())
    assert reply.status_code == 413 and reply.json()["field"] == "files"


def test_16_bit_upload_scores_like_its_8_bit_version(client):
    grey8 = np.asarray(photo().convert("L"), dtype=np.uint16)
    pair = files(("deep.png", png16(grey8 * 257)), ("flat.png", encoded(photo().convert("L"), "PNG")))
    body = client.post("/score", files=pair, data={"prompt": PROMPT}).json()
    deep, flat = (result["scores"] for result in body["results"])
    assert all(abs(deep[d] - flat[d]) < 1e-4 for d in deep)


def test_http_and_python_give_the_same_scores_for_a_large_image(client, scorer):
    large = encoded(photo((1200, 900)), "JPEG", quality=92)
    body = client.post("/score", files=files(("large.jpg", large)), data={"prompt": PROMPT}).json()
    direct = scorer.score([large], PROMPT)[0]
    assert all(abs(body["results"][0]["scores"][d] - direct[d]) < 1e-5 for d in direct)


def test_health_publishes_the_limits(client):
    limits = client.get("/health").json()["limits"]
    assert limits == {"max_files": 4, "max_request_bytes": 2_000_000, "max_image_pixels": 4_000_000, "max_total_pixels": 6_000_000}


class _SlowScorer:
    """The real scorer, two seconds slower per request: time for other clients to knock."""

    def __init__(self, scorer: Scorer) -> None:
        self.inner = scorer
        self.input_pixels = scorer.input_pixels

    def check_prompts(self, prompts):
        return self.inner.check_prompts(prompts)

    def score(self, images, prompts):
        time.sleep(2.0)
        return self.inner.score(images, prompts)


def test_the_server_answers_others_while_a_request_is_scored(scorer):
    from tests.workbench.conftest import live_server

    with live_server(create_app(_SlowScorer(scorer), {})) as url:
        slow = concurrent.futures.ThreadPoolExecutor(1).submit(
            httpx.post, f"{url}/score", files=files(("a.png", png())), data={"prompt": PROMPT}, timeout=60
        )
        time.sleep(0.5)
        started = time.perf_counter()
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        refused = httpx.post(f"{url}/score", files=files(("bomb.png", bomb_png())), data={"prompt": PROMPT}, timeout=10)
        assert refused.status_code == 413
        assert time.perf_counter() - started < 1.5  # not queued behind the slow request
        assert slow.result().status_code == 200
