"""API tests for every workbench endpoint (seed 001 §3.2)."""

from __future__ import annotations

import io
import json
import threading
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aesthetic_platform.generation import DiffusersGenerator, PosterRenderer
from aesthetic_platform.workbench import active_selections, read_log, selections_path
from aesthetic_platform.workbench.app import create_app
from aesthetic_platform.workbench.batches import WorkbenchSettings, build_workbench_generator
from tests.fixtures.tiny_diffusers import tiny_flux_pipeline
from tests.workbench.conftest import PROMPTS_CSV, SMALL, fake_scorer, live_server

IMAGE_KEYS = {"url", "seed", "score", "params"}
PREFETCH_WAIT_S = 10.0


def _log_lines(data_root) -> list[dict]:
    return [json.loads(line) for line in selections_path(data_root).read_text().splitlines()]


def test_page_and_static_assets(client):
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="tab-settings"' in page.text and 'id="tab-workbench"' in page.text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_state_before_anything(client, data_root):
    state = client.get("/state").json()
    assert state["annotator"] == "alice"
    assert state["initialised"] is False and state["prompts"] == 0 and state["batch"] is None
    assert state["selections_log"] == str(selections_path(data_root))


# --- /upload_prompts -------------------------------------------------------------------
def test_upload_csv_and_json(client):
    csv_reply = client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
    assert csv_reply.status_code == 200 and csv_reply.json()["prompts"] == 3
    body = json.dumps({"prompts": ["A teal poster", {"text": "一张红色的猫海报", "language": "zh"}]}).encode()
    json_reply = client.post("/upload_prompts", files={"file": ("more.json", body, "application/json")})
    assert json_reply.status_code == 200 and json_reply.json()["prompts"] == 2
    assert client.get("/state").json()["prompts"] == 2


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("bad.csv", b"text,colour\nA poster,red\n", ["bad.csv", "line 1", "colour", "unknown column"]),
        ("bad.csv", b"text,palette\nA poster,ultraviolet\n", ["bad.csv", "line 2", "palette", "ultraviolet"]),
        ("bad.json", b'[{"text": "ok"}, {"txt": "typo"}]', ["bad.json", "record 2", "txt"]),
        ("bad.json", b'[{"text": "unterminated"', ["bad.json", "line 1", "invalid JSON"]),
        ("prompts.txt", b"text\nA poster\n", ["prompts.txt", "unsupported extension", ".csv or .json"]),
        ("latin1.csv", "text\nAffiche café\n".encode("latin-1"), ["latin1.csv", "not UTF-8"]),
    ],
)
def test_malformed_upload_is_refused_naming_the_problem(client, name, content, expected):
    reply = client.post("/upload_prompts", files={"file": (name, content, "text/plain")})
    assert reply.status_code == 422
    for fragment in expected:
        assert fragment in reply.json()["detail"]
    assert client.get("/state").json()["prompts"] == 0  # nothing half-imported


# --- /init_model ----------------------------------------------------------------------------
def test_init_model_reports_generator_size_and_assist(client, data_root):
    reply = client.post("/init_model", json={**SMALL, "ratio": "16:9"})
    assert reply.status_code == 200
    body = reply.json()
    assert body["generator"] == "poster-renderer/v1"
    assert body["size"]["width"] > body["size"]["height"]
    assert body["assist"]["available"] is False
    assert str(data_root.models / "champion") in body["assist"]["reason"]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"generator": "dalle"}, "generator"),
        ({"ratio": "2:1"}, "ratio"),
        ({"seeds_per_batch": 1}, "seeds_per_batch"),
        ({"batch_size": 0}, "batch_size"),
        ({"cfg": 3}, "cfg"),
    ],
)
def test_init_model_refuses_bad_settings_naming_the_field(client, settings, field):
    reply = client.post("/init_model", json=settings)
    assert reply.status_code == 422
    assert any(field in error["loc"] for error in reply.json()["detail"])


def test_init_model_with_an_unloadable_diffusers_model(client, tmp_path):
    missing = tmp_path / "no-such-model"
    reply = client.post("/init_model", json={"generator": "diffusers", "model_id": str(missing)})
    assert reply.status_code == 422
    assert str(missing) in reply.json()["detail"]
    assert client.get("/state").json()["initialised"] is False


# --- /get_next_prompt -----------------------------------------------------------------------
def test_get_next_prompt_walks_the_file_then_says_done(client):
    assert client.post("/get_next_prompt").status_code == 409  # nothing uploaded yet
    client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
    texts = [client.post("/get_next_prompt").json()["prompt"]["text"] for _ in range(3)]
    assert texts == ["A red poster of a cat", "A blue poster of a car", "A gold sneaker poster"]
    final = client.post("/get_next_prompt").json()
    assert final == {"prompt": None, "done": True}


# --- /generate_batch --------------------------------------------------------------------------
def test_generate_batch_needs_a_model_and_a_prompt(client):
    client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
    assert "Initialise" in client.post("/generate_batch").json()["detail"]
    client.post("/init_model", json=SMALL)
    reply = client.post("/generate_batch")
    assert reply.status_code == 409 and "get_next_prompt" in reply.json()["detail"]


def test_seeds_per_batch_is_the_workbench_knob_and_batch_size_stays_the_generators(client):
    """Seeds per judged batch and images per pipeline call are two knobs; the latter keeps GeneratorConfig's default."""
    from aesthetic_platform.generation import GeneratorConfig

    defaults = client.get("/state").json()["defaults"]
    assert defaults["batch_size"] == GeneratorConfig().batch_size and defaults["seeds_per_batch"] == 8
    client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
    settings = client.post("/init_model", json={**SMALL, "seeds_per_batch": 3, "batch_size": 2}).json()["settings"]
    assert (settings["seeds_per_batch"], settings["batch_size"]) == (3, 2)
    client.post("/get_next_prompt")
    assert len(client.post("/generate_batch").json()["images"]) == 3


def test_generate_batch_response_shape_and_files(ready, data_root):
    batch = ready.post("/generate_batch").json()
    assert batch["prompt"]["text"] == "A red poster of a cat" and batch["prompt"]["index"] == 0
    assert len(batch["images"]) == SMALL["seeds_per_batch"]
    assert len({image["seed"] for image in batch["images"]}) == SMALL["seeds_per_batch"]
    for image in batch["images"]:
        assert set(image) == IMAGE_KEYS
        assert image["params"]["width"] == 64 and image["params"]["height"] == 64
        assert image["params"]["generator"] == "poster-renderer/v1"
        assert image["url"].startswith(f"/images/{batch['prompt']['prompt_id']}/") and image["url"].endswith(f"/{image['seed']}_64x64.png")
        png = ready.get(image["url"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert len(list((data_root.root / "workbench" / "images").rglob("*.png"))) >= SMALL["seeds_per_batch"]


def test_explicit_seeds_reproduce_the_same_pixels(ready):
    first = ready.post("/generate_batch", json={"seeds": [7, 8]}).json()
    again = ready.post("/generate_batch", json={"seeds": [8, 7]}).json()
    assert [i["seed"] for i in first["images"]] == [7, 8]
    by_seed = {i["seed"]: ready.get(i["url"]).content for i in again["images"]}
    assert [ready.get(i["url"]).content for i in first["images"]] == [by_seed[7], by_seed[8]]


def test_generate_batch_refuses_bad_seeds_and_unknown_prompts(ready):
    duplicate = ready.post("/generate_batch", json={"seeds": [3, 3]})
    assert duplicate.status_code == 422 and "distinct" in duplicate.json()["detail"]
    out_of_range = ready.post("/generate_batch", json={"seeds": [1, 2**32]})
    assert out_of_range.status_code == 422 and "2**32" in out_of_range.json()["detail"]
    unknown = ready.post("/generate_batch", json={"prompt_id": "p000000000000000"})
    assert unknown.status_code == 404 and "p000000000000000" in unknown.json()["detail"]


def test_assist_unavailable_shows_no_number(ready):
    batch = ready.post("/generate_batch").json()
    assert [image["score"] for image in batch["images"]] == [None] * SMALL["seeds_per_batch"]
    assert batch["score_model"] is None
    assert ready.get("/state").json()["assist"]["available"] is False


def test_assist_scores_come_from_the_given_scorer(data_root):
    with TestClient(create_app(data_root, "alice", scorer=fake_scorer)) as client:
        client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
        expected = {"available": True, "reason": "scorer given at start-up", "name": "fake_scorer"}
        assert client.post("/init_model", json=SMALL).json()["assist"] == expected
        client.post("/get_next_prompt")
        batch = client.post("/generate_batch").json()
        for image in batch["images"]:
            picture = Image.open(io.BytesIO(client.get(image["url"]).content))
            assert image["score"] == pytest.approx(fake_scorer([picture], "")[0])
        assert batch["score_model"] == "fake_scorer"
        # the settings toggle switches scoring off without pretending
        client.post("/init_model", json={**SMALL, "assist": False})
        assert {image["score"] for image in client.post("/generate_batch").json()["images"]} == {None}


def test_next_batch_is_prefetched_while_judging(ready):
    first = ready.post("/generate_batch").json()
    assert first["prefetched"] is False
    deadline = time.monotonic() + PREFETCH_WAIT_S
    while not any(p["ready"] for p in ready.get("/state").json()["prefetch"]):
        assert time.monotonic() < deadline, "the next prompt's batch was never prefetched"
        time.sleep(0.02)
    following = ready.post("/get_next_prompt").json()["prompt"]
    second = ready.post("/generate_batch").json()
    assert second["prefetched"] is True
    assert second["prompt"]["prompt_id"] == following["prompt_id"] != first["prompt"]["prompt_id"]


def test_diffusers_generator_records_sampling_parameters(data_root):
    def tiny(settings: WorkbenchSettings):
        return DiffusersGenerator.from_pipeline(tiny_flux_pipeline(), "tiny-flux", steps=settings.steps, guidance=settings.guidance)

    with TestClient(create_app(data_root, "alice", scorer=None, generator_factory=tiny)) as client:
        client.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")})
        assert client.post("/init_model", json={**SMALL, "generator": "diffusers", "steps": 2, "guidance": 1.5}).status_code == 200
        client.post("/get_next_prompt")
        batch = client.post("/generate_batch", json={"seeds": [11, 12]}).json()
        params = batch["images"][0]["params"]
        assert params["steps"] == 2 and params["guidance"] == 1.5 and params["scheduler"] == "FlowMatchEulerDiscreteScheduler"
        assert params["latent_channels"] == 4 and params["vae_scale_factor"] == 8 and params["latent_layout"] == "flux"
        record = client.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": [12]}).json()["record"]
    assert record["generator"] == "diffusers/tiny-flux" and record["model_version"].startswith("local (diffusers ")
    assert (record["steps"], record["guidance"], record["scheduler"]) == (2, 1.5, "FlowMatchEulerDiscreteScheduler")


# --- /images ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "attack",
    [
        "/images/..%2F..%2Fsecret.txt",
        "/images/..%2Fselections.jsonl",
        "/images/%2E%2E/%2E%2E/secret.txt",
        "/images/x/..%2F..%2F..%2Fsecret.txt",
        "/images/%2Fetc%2Fpasswd",
        "/images//etc/passwd",
    ],
)
def test_image_route_refuses_path_traversal(ready, data_root, attack):
    (data_root.root / "secret.txt").write_text("TOP SECRET")
    ready.post("/generate_batch")  # something real to serve, so a refusal is not just an empty folder
    reply = ready.get(attack)
    assert reply.status_code in (403, 404)
    assert "TOP SECRET" not in reply.text and "root:" not in reply.text


def test_image_route_serves_only_pngs_that_exist(ready, data_root):
    assert ready.get("/images/p000/none.png").status_code == 404
    ready.post("/generate_batch")
    (data_root.root / "workbench" / "images" / "note.txt").write_text("not an image")
    assert ready.get("/images/note.txt").status_code == 404
    assert ready.get("/images/%2E%2E").status_code == 403


# --- /submit_selection and /undo_last ------------------------------------------------------------
def test_submit_selection_stores_full_metadata(ready, data_root):
    batch = ready.post("/generate_batch").json()
    seeds = [image["seed"] for image in batch["images"]]
    reply = ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": [seeds[2], seeds[0]]})
    assert reply.status_code == 200
    (line,) = _log_lines(data_root)
    assert line["submission_id"] == reply.json()["submission_id"]
    assert line["golden_seeds"] == [seeds[0], seeds[2]] and line["bad_seeds"] == [seeds[1], seeds[3]]
    assert line["prompt"] == "A red poster of a cat" and line["annotator"] == "alice"
    assert line["generator"] == "poster-renderer/v1" and line["model_version"] == "poster-renderer/v1"
    assert (line["width"], line["height"], line["ratio"]) == (64, 64, "1:1")
    for key in ("steps", "guidance", "scheduler", "score_model", "generated_at", "submitted_at", "prompt_hash", "params"):
        assert key in line
    assert [image["seed"] for image in line["images"]] == seeds
    assert all(image["score"] is None for image in line["images"])


def test_ties_and_all_bad_are_allowed(ready, data_root):
    batch = ready.post("/generate_batch").json()
    seeds = [image["seed"] for image in batch["images"]]
    assert ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": []}).status_code == 200
    selection = {"batch_id": batch["batch_id"], "golden_seeds": seeds, "annotator": "bob"}
    assert ready.post("/submit_selection", json=selection).status_code == 200
    all_bad, all_golden = _log_lines(data_root)
    assert all_bad["golden_seeds"] == [] and all_bad["bad_seeds"] == seeds
    assert all_golden["golden_seeds"] == seeds and all_golden["annotator"] == "bob"


def test_submit_refuses_unknown_batches_and_seeds(ready, data_root):
    batch = ready.post("/generate_batch").json()
    wrong_seed = ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": [123456789012]})
    assert wrong_seed.status_code == 422 and "123456789012" in wrong_seed.json()["detail"]
    wrong_batch = ready.post("/submit_selection", json={"batch_id": "nope", "golden_seeds": []})
    assert wrong_batch.status_code == 404 and "nope" in wrong_batch.json()["detail"]
    assert ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "annotator": " "}).status_code == 422
    assert not selections_path(data_root).exists()


def test_undo_appends_a_line_and_readers_honour_it(ready, data_root):
    assert ready.post("/undo_last").status_code == 404
    batch = ready.post("/generate_batch").json()
    first = ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": [batch["images"][0]["seed"]]}).json()
    second = ready.post("/submit_selection", json={"batch_id": batch["batch_id"], "golden_seeds": []}).json()
    undo = ready.post("/undo_last").json()
    assert undo["undone"]["submission_id"] == second["submission_id"]
    assert undo["batch"]["batch_id"] == batch["batch_id"]  # comes back for re-judging
    lines = _log_lines(data_root)
    assert [line["kind"] for line in lines] == ["selection", "selection", "undo"]
    assert lines[2]["undoes"] == second["submission_id"]
    assert [s.submission_id for s in active_selections(read_log(data_root))] == [first["submission_id"]]
    assert ready.post("/undo_last", json={"annotator": "bob"}).status_code == 404  # only your own submissions


def test_concurrent_submissions_from_several_annotators_lose_nothing(data_root):
    annotators, per_annotator = 4, 6
    app = create_app(data_root, "alice", scorer=None)
    with live_server(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        http.post("/upload_prompts", files={"file": ("prompts.csv", PROMPTS_CSV, "text/csv")}).raise_for_status()
        http.post("/init_model", json=SMALL).raise_for_status()
        http.post("/get_next_prompt").raise_for_status()
        batch = http.post("/generate_batch").json()
        seeds = [image["seed"] for image in batch["images"]]
        ids: list[str] = []
        errors: list[str] = []
        start = threading.Barrier(annotators)

        def annotate(who: str) -> None:
            with httpx.Client(base_url=url, timeout=30) as own:
                start.wait()
                for k in range(per_annotator):
                    selection = {"batch_id": batch["batch_id"], "golden_seeds": seeds[: k % 3], "annotator": who}
                    reply = own.post("/submit_selection", json=selection)
                    if reply.status_code != 200:
                        errors.append(reply.text)
                    else:
                        ids.append(reply.json()["submission_id"])

        threads = [threading.Thread(target=annotate, args=(f"annotator-{i}",)) for i in range(annotators)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    lines = _log_lines(data_root)  # json.loads of every line: a torn or interleaved line fails here
    assert len(lines) == annotators * per_annotator
    assert sorted(line["submission_id"] for line in lines) == sorted(ids)
    for i in range(annotators):
        assert sum(line["annotator"] == f"annotator-{i}" for line in lines) == per_annotator


def test_default_settings_use_the_platform_poster_renderer():
    assert isinstance(build_workbench_generator(WorkbenchSettings()), PosterRenderer)  # the class the candidate chain uses
