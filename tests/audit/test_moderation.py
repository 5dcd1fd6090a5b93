"""The moderation client against a local OpenAI-compatible endpoint with faults."""

from __future__ import annotations

import io

from PIL import Image

from tests.audit.conftest import client_for


def _png(path, colour):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), colour).save(buffer, "PNG")
    path.write_bytes(buffer.getvalue())
    return path


def test_texts_are_moderated_in_one_request_with_categories_and_scores(moderation_server):
    outcomes = client_for(moderation_server).texts(["a calm poster", "a FORBIDDEN poster"])
    assert [o.flagged for o in outcomes] == [False, True]
    assert outcomes[1].categories == ["violence"] and outcomes[1].scores["violence"] == 0.93
    assert outcomes[0].scores["harassment/threatening"] == 0.01 and outcomes[0].attempts == 1
    assert moderation_server.state.requests == 1 and moderation_server.state.inputs[0] == ["a calm poster", "a FORBIDDEN poster"]


def test_thresholds_flag_below_the_endpoint_verdict(moderation_server):
    outcome = client_for(moderation_server, violence=0.005).texts(["a calm poster"])[0]
    assert outcome.flagged and outcome.categories == ["violence"]


def test_images_go_as_data_urls(moderation_server, tmp_path):
    client = client_for(moderation_server)
    red, blue = client.image(_png(tmp_path / "red.png", (230, 10, 10))), client.image(_png(tmp_path / "blue.png", (10, 10, 230)))
    assert red.flagged and red.categories == ["violence/graphic"] and not blue.flagged
    sent = moderation_server.state.inputs[0][0]
    assert sent["type"] == "image_url" and sent["image_url"]["url"].startswith("data:image/png;base64,")
    assert client.image(tmp_path / "missing.png").error.startswith("cannot read")


def test_transient_faults_are_retried_by_the_sdk(moderation_server):
    moderation_server.state.inject("rate_limit")
    moderation_server.state.inject("server_error")
    outcome = client_for(moderation_server, max_attempts=3).texts(["a FORBIDDEN poster"])[0]
    assert outcome.ok and outcome.flagged and outcome.attempts == 3


def test_every_failure_is_an_error_never_a_pass(moderation_server):
    state = moderation_server.state
    state.inject("server_error", times=None)
    down = client_for(moderation_server, max_attempts=2).texts(["a", "b"])
    assert all(not o.ok and not o.flagged and o.attempts == 2 for o in down)
    assert "500" in down[0].error or "InternalServerError" in down[0].error
    state.faults.clear()
    state.inject("malformed")
    assert not client_for(moderation_server, max_attempts=1).texts(["a"])[0].ok
    state.inject("short")
    short = client_for(moderation_server, max_attempts=1).texts(["a", "b"])
    assert all("2 inputs" in o.error for o in short)
    state.slow_s = 0.8
    state.inject("slow")
    slow = client_for(moderation_server, max_attempts=1, timeout_s=0.3).texts(["a"])[0]
    assert not slow.ok and "Timeout" in slow.error
