"""The web builder's HTTP API: streamed upload with a limit, SSE progress, jobs from disk, crop adjust, download."""

from __future__ import annotations

import io
import json
import time
import zipfile

import polars as pl
import pytest
from fastapi.testclient import TestClient

from aesthetic_platform.lora.app import SETTINGS_FILE, WebSettings, create_app
from aesthetic_platform.lora.config import CaptionConfig, LoraConfig, PackageConfig
from aesthetic_platform.lora.pipeline import read_job, run_lock, set_state
from tests.fixtures.lora_photos import SMALL_CROP, photo_zip

FAST = LoraConfig.model_validate({"dedup": {"analysis_side": 256}, "crop": SMALL_CROP})
WAIT_S = 60.0


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return photo_zip(tmp_path_factory.mktemp("lora-web") / "photos.zip").read_bytes()


def _wait_done(client: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["state"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {WAIT_S} s")


def _events(client: TestClient, job_id: str) -> list[tuple[str, dict]]:
    events = []
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def test_upload_progress_preview_adjust_and_download(data_root, archive):
    client = TestClient(create_app(data_root, FAST))
    settings = client.get("/api/settings").json()["settings"]
    changed = {**settings, "package": {**settings["package"], "trigger": "zxq", "repeats": 3}}
    assert client.put("/api/settings", json=changed).status_code == 200

    created = client.post("/api/jobs?name=my photos.zip", content=archive, headers={"Content-Type": "application/zip"})
    assert created.status_code == 201, created.text
    job_id = created.json()["job"]["job_id"]
    assert created.json()["bytes"] == len(archive)
    events = _events(client, job_id)  # follows job.json until the job is no longer queued or running
    assert events[-1] == ("end", {"state": "done"})
    seen = {(stage, e["stages"][stage]["status"]) for kind, e in events if kind == "job" for stage in e["stages"]}
    assert {(s, "done") for s in ("ingest", "dedup", "crops", "captions", "package")} <= seen
    assert len([e for e in events if e[0] == "job"]) >= 2  # progress arrived as it happened, not only the final state

    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["state"] == "done" and job["source_name"] == "my photos.zip" and job["download_url"]
    kept = [i for i in job["items"] if i["status"] == "kept"]
    dropped = [i for i in job["items"] if i["status"] == "dropped"]
    assert len(kept) == 4 and len(dropped) == 3
    assert {i["category"] for i in dropped} == {"dedup:near", "ingest:skipped"}
    assert all(i["reason"] for i in dropped) and all(i["lost_to"] for i in dropped if i["category"] == "dedup:near")
    assert client.get(kept[0]["crop_url"]).headers["content-type"] == "image/png"
    assert client.get(kept[0]["source_url"]).status_code == 200
    assert client.get("/api/jobs").json()["jobs"][0]["job_id"] == job_id

    target = kept[0]["image_id"]
    finished = {s: job["stages"][s]["summary"] for s in ("ingest", "dedup")}
    ingest_file = data_root.root / "lora" / job_id / "ingest.parquet"
    stamp = ingest_file.stat().st_mtime_ns
    bad = client.post(f"/api/jobs/{job_id}/crop", json={"image_id": target, "box": [0, 0, 100, 40]})
    assert bad.status_code == 422 and "must be square" in bad.json()["detail"]
    moved = client.post(f"/api/jobs/{job_id}/crop", json={"image_id": target, "box": [30, 30, 130, 130]})
    assert moved.status_code == 202
    assert _events(client, job_id)[-1] == ("end", {"state": "done"})
    job = client.get(f"/api/jobs/{job_id}").json()
    stages = job["stages"]
    assert {s: stages[s]["summary"] for s in ("ingest", "dedup")} == finished and ingest_file.stat().st_mtime_ns == stamp
    assert read_job(ingest_file.parent)["stages"]["dedup"]["finished_at"] <= read_job(ingest_file.parent)["stages"]["crops"]["started_at"]
    assert stages["crops"]["recomputed"] and stages["captions"]["summary"]["captioned"] == 1
    item = next(i for i in job["items"] if i["image_id"] == target)
    assert item["crop_source"] == "manual" and item["crop_box"] == [30, 30, 130, 130]

    download = client.get(job["download_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(download.content)) as packed:
        manifest = pl.read_parquet(io.BytesIO(packed.read("manifest.parquet")))
        paths = [p for p in manifest["dataset_path"].to_list() if p]
        assert sorted(packed.namelist()) == sorted(["manifest.parquet", *paths, *(p.removesuffix(".png") + ".txt" for p in paths)])
        assert all(p.startswith("3_zxq person/") for p in paths)


def test_uploads_over_the_limit_or_not_zips_are_refused_and_leave_nothing(data_root, archive):
    client = TestClient(create_app(data_root, FAST, max_upload_bytes=1000))
    declared = client.post("/api/jobs", content=archive)
    assert declared.status_code == 413 and "over the 1,000-byte limit" in declared.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for start in range(0, len(archive), 400):
            yield archive[start:start + 400]

    streamed = client.post("/api/jobs", content=chunks())
    assert streamed.status_code == 413 and "upload refused" in streamed.json()["detail"]
    small = TestClient(create_app(data_root, FAST))
    not_zip = small.post("/api/jobs?name=notes.txt", content=b"hello, not a zip")
    assert not_zip.status_code == 415 and "'notes.txt' is not a ZIP archive" in not_zip.json()["detail"]
    assert small.post("/api/jobs", content=b"").status_code == 400
    assert small.get("/api/jobs").json()["jobs"] == []
    assert [p.name for p in (data_root.root / "lora").iterdir() if p.is_dir()] == []


def test_jobs_survive_a_restart_and_interrupted_ones_resume(data_root, archive):
    first = TestClient(create_app(data_root, FAST))
    job_id = first.post("/api/jobs", content=archive).json()["job"]["job_id"]
    assert _wait_done(first, job_id)["state"] == "done"
    work_dir = data_root.root / "lora" / job_id
    set_state(work_dir, "running")  # as a server killed mid-job leaves it
    assert first.post(f"/api/jobs/{job_id}/crop", json={"image_id": "x", "box": [0, 0, 1, 1]}).status_code == 409

    second = TestClient(create_app(data_root, FAST))  # a restarted server
    assert second.app.state.resumed == [job_id]
    assert _wait_done(second, job_id)["state"] == "done"
    listed = second.get("/api/jobs").json()["jobs"]
    assert [j["job_id"] for j in listed] == [job_id] and listed[0]["stages"]["package"]["status"] == "done"
    assert not read_job(work_dir)["stages"]["dedup"]["recomputed"]  # nothing that was done is redone

    with run_lock(work_dir):  # a CLI build or a Dagster run holds the folder: the job says so rather than waiting forever
        second.app.state.jobs.submit(job_id)
        failed = _wait_done(second, job_id)
    assert failed["state"] == "failed" and "being processed by another run" in failed["error"]


def test_unknown_jobs_and_hostile_ids_get_404_and_settings_are_checked(data_root):
    client = TestClient(create_app(data_root, FAST))
    assert client.get("/api/jobs/nope").status_code == 404
    assert client.get("/api/jobs/..%2F..%2Fetc/download").status_code == 404
    assert client.get("/api/jobs/.hidden/events").status_code == 404
    settings = client.get("/api/settings").json()["settings"]
    assert client.put("/api/settings", json={**settings, "package": {"trigger": "a b/c"}}).status_code == 422
    assert client.put("/api/settings", json={**settings, "caption": {"api_key_env": "A KEY"}}).status_code == 422
    for key in ({"api_key": "sk-x"}, {"caption": {**settings["caption"], "api_key": "sk-x"}}):  # keys stay in the environment
        refused = client.put("/api/settings", json={**settings, **key})
        assert refused.status_code == 422 and "api_key" in refused.text
    page = client.get("/")
    assert page.status_code == 200 and "LoRA dataset builder" in page.text


def test_a_refused_archive_fails_its_job_with_the_reason(data_root):
    client = TestClient(create_app(data_root, FAST))
    created = client.post("/api/jobs?name=broken.zip", content=b"PK\x03\x04" + b"\x00" * 200)
    assert created.status_code == 201
    job = _wait_done(client, created.json()["job"]["job_id"])
    assert job["state"] == "failed" and job["stages"]["ingest"]["status"] == "failed"
    assert "ArchiveRefusedError" in job["stages"]["ingest"]["error"] and job["download_url"] == ""
    assert job["items"] == []


def test_the_settings_form_is_the_core_caption_and_package_configs(data_root):
    """The page's defaults and limits are CaptionConfig's and PackageConfig's; it sets only its own fields."""
    page = WebSettings().page()
    assert page["caption"] == CaptionConfig().model_dump(include=set(page["caption"]))
    assert page["package"] == PackageConfig().model_dump(include=set(page["package"]))
    assert "api_key" not in page["caption"] and WebSettings().apply(LoraConfig()) == LoraConfig()
    base = LoraConfig.model_validate({"caption": {"temperature": 0.7, "max_tokens": 99}, "package": {"zip_name": "a.zip"}})
    applied = WebSettings.model_validate({"package": {"trigger": "zxq"}, "caption": {"models": [" m1 ", ""]}}).apply(base)
    assert applied.caption.trigger == applied.package.trigger == "zxq" and applied.caption.models == ["m1"]
    assert (applied.caption.temperature, applied.caption.max_tokens, applied.package.zip_name) == (0.7, 99, "a.zip")  # not on the page
    with pytest.raises(ValueError, match="does not set temperature"):
        WebSettings.model_validate({"caption": {"temperature": 1.0}})

    client = TestClient(create_app(data_root, base))
    shown = client.get("/api/settings").json()["settings"]
    assert shown["caption"]["max_side"] == CaptionConfig().max_side and "temperature" not in shown["caption"]
    saved = client.put("/api/settings", json={"package": {"class_word": "woman"}}).json()["settings"]
    assert saved["package"] == {"trigger": "ohwx", "class_word": "woman", "repeats": PackageConfig().repeats}
    # a settings.json the page saved before its settings were nested keeps its values
    (data_root.root / "lora" / SETTINGS_FILE).write_text(json.dumps({"trigger": "old", "repeats": 4, "caption_max_side": 256}))
    shown = client.get("/api/settings").json()["settings"]
    assert (shown["package"]["trigger"], shown["package"]["repeats"], shown["caption"]["max_side"]) == ("old", 4, 256)
