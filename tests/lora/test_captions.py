"""Captions: offline tags by default (no socket opened), a VLM with model fallback when an endpoint is configured."""

from __future__ import annotations

import socket

import pytest
from PIL import Image

from aesthetic_platform.lora.captions import OFFLINE_MODEL, caption_crops, read_captions, with_trigger
from aesthetic_platform.lora.config import CaptionConfig
from tests.fixtures.lora_photos import CaptionServer, tables_by_hand
from tests.fixtures.servers import serving


@pytest.fixture
def work_dir(tmp_path):
    folder = tmp_path / "job"
    tables_by_hand(folder)
    return folder


def _no_network(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    attempts: list[object] = []

    def refuse(self, address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"a socket was opened to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts


def test_offline_default_writes_deterministic_tags_and_opens_no_socket(work_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a generic endpoint alone must not switch the VLM on
    monkeypatch.delenv("AESTHETIC_CAPTION_BASE_URL", raising=False)
    attempts = _no_network(monkeypatch)
    config = CaptionConfig(trigger="zxq")
    result = caption_crops(work_dir, config)
    (row,) = read_captions(work_dir)  # the refused crop gets no caption
    assert attempts == []
    assert result.by_source == {"offline": 1} and result.captioned == 1
    assert row.image_id == "iastro" and row.source == "offline" and row.model == OFFLINE_MODEL
    assert row.sent_width == 0 and row.sent_height == 0 and row.attempts == 0
    tags = row.caption.split(", ")
    assert tags[0] == "zxq"
    assert "head and shoulders portrait" in tags  # face 46 px high in a 120 px crop
    assert "square photo" in tags  # the 512x512 original
    assert any(t.startswith("dominant ") or t in ("muted colours", "monochrome") for t in tags)
    assert any(t.endswith("lighting") for t in tags)

    (work_dir / "captions.parquet").unlink()
    caption_crops(work_dir, config)
    assert read_captions(work_dir)[0].caption == row.caption  # deterministic


def test_offline_tags_follow_the_pixels(work_dir):
    dark = Image.new("RGB", (96, 96), (20, 10, 60))
    dark.save(work_dir / "crops" / "iastro.png")
    caption_crops(work_dir, CaptionConfig())
    tags = read_captions(work_dir)[0].caption.split(", ")
    assert "dark low-key lighting" in tags and "dominant blue tones" in tags and "cool tones" in tags


def test_vlm_falls_back_to_the_next_model_and_sends_only_the_downscaled_crop(work_dir, monkeypatch):
    monkeypatch.setenv("LORA_TEST_KEY", "sk-test-123")
    fake = CaptionServer(fail_models={"first-choice"})
    with serving(fake.app(), "caption VLM") as url:
        config = CaptionConfig(
            base_url=f"{url}/v1", models=["first-choice", "second-choice"], api_key_env="LORA_TEST_KEY",
            prompt="Tag this portrait.", trigger="zxq", max_side=64, max_attempts=1,
        )
        result = caption_crops(work_dir, config)
        (row,) = read_captions(work_dir)
        assert [r["model"] for r in fake.requests] == ["first-choice", "second-choice"]
        assert all(r["size"] == (64, 64) for r in fake.requests)  # the 96 px crop, downscaled; never the stored image
        assert all(r["prompt"] == "Tag this portrait." and r["mime"] == "data:image/jpeg;base64" for r in fake.requests)
        assert all(r["auth"] == "Bearer sk-test-123" for r in fake.requests)
        assert row.source == "vlm" and row.model == "second-choice"
        assert row.caption == "zxq, smiling, white spacesuit, american flag, studio lighting"
        assert row.errors.startswith("first-choice: BadRequestError") and row.attempts == 2
        assert (row.sent_width, row.sent_height) == (64, 64)
        assert result.by_model == {"second-choice": 1} and result.vlm_failures == 0

        again = caption_crops(work_dir, config)  # unchanged crop and settings: reused, nothing sent
        assert again.reused == 1 and again.captioned == 0 and len(fake.requests) == 2
        Image.new("RGB", (96, 96), (200, 30, 30)).save(work_dir / "crops" / "iastro.png")  # a moved crop box
        moved = caption_crops(work_dir, config)
        assert moved.captioned == 1 and len(fake.requests) == 4


def test_retries_then_every_model_failing_falls_back_to_offline_tags_with_the_errors(work_dir):
    fake = CaptionServer(flaky_models={"flaky": 1})
    with serving(fake.app(), "caption VLM") as url:
        retried = caption_crops(work_dir, CaptionConfig(base_url=f"{url}/v1", models=["flaky"], max_attempts=2))
        row = read_captions(work_dir)[0]
        assert retried.by_source == {"vlm": 1} and row.attempts == 2 and row.errors == ""

        fake.fail_models = {"a", "b"}
        failed = caption_crops(work_dir, CaptionConfig(base_url=f"{url}/v1", models=["a", "b"], max_attempts=1))
        row = read_captions(work_dir)[0]
        assert failed.vlm_failures == 1 and row.source == "offline" and row.model == OFFLINE_MODEL
        assert row.errors.startswith("every model failed: a: BadRequestError") and "b: BadRequestError" in row.errors
        assert row.caption.startswith("ohwx, ")


def test_the_trigger_comes_first_exactly_once():
    assert with_trigger("Caption: smiling woman\nred dress", "zxq") == "zxq, smiling woman, red dress"
    assert with_trigger("zxq, smiling", "zxq") == "zxq, smiling"
    assert with_trigger('"portrait, outdoors"', "zxq") == "zxq, portrait, outdoors"
