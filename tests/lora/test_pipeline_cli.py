"""The staged pipeline and ``aesthetic lora build``: job.json state, up-to-date stages skipped, manual crop boxes."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest
from typer.testing import CliRunner

from aesthetic_platform.lora.captions import read_captions
from aesthetic_platform.lora.cli import lora_app
from aesthetic_platform.lora.config import LoraConfig
from aesthetic_platform.lora.pipeline import (
    STAGES,
    JobBusyError,
    JobError,
    init_job,
    job_config,
    read_job,
    run_lock,
    run_stage,
    run_stages,
    set_crop_box,
)
from aesthetic_platform.lora.schemas import CROP_RECORDS, DEDUP_DECISIONS
from aesthetic_platform.lora.tables import MANIFEST_RECORDS
from tests.fixtures.lora_photos import SMALL_CROP, CaptionServer, photo_zip
from tests.fixtures.servers import serving

#: Small analysis and crop sizes keep a whole build near a second on two cores.
FAST = {"dedup": {"analysis_side": 256}, "crop": SMALL_CROP}
OUTPUTS = ("ingest.parquet", "dedup.parquet", "crops.parquet", "captions.parquet", "manifest.parquet")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One CLI build of the photo ZIP; tests that change it work on a copy."""
    folder = tmp_path_factory.mktemp("lora-cli")
    archive = photo_zip(folder / "photos.zip")
    config = folder / "fast.json"
    config.write_text(json.dumps(FAST))
    out = folder / "out"
    args = ["build", "--input", str(archive), "--output", str(out), "--trigger", "zxq", "--class-word", "woman", "--config", str(config)]
    result = CliRunner().invoke(lora_app, args)
    assert result.exit_code == 0, result.output
    return {"archive": archive, "out": out, "output": result.output, "args": args}


@pytest.fixture
def work_dir(built, tmp_path):
    copy = tmp_path / "job"
    shutil.copytree(built["out"], copy)
    return copy


def _mtimes(folder):
    return {name: (folder / name).stat().st_mtime_ns for name in OUTPUTS}


def test_cli_build_writes_the_dataset_and_a_summary(built):
    out, output = built["out"], built["output"]
    manifest = MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(out / "manifest.parquet"))
    assert len(manifest) == 7  # six photos and a text file, dropped ones included
    kept = [r for r in manifest if r.status == "kept"]
    assert len(kept) == 4 and {r.category for r in manifest} == {"kept", "dedup:near", "ingest:skipped"}
    assert all(r.caption.startswith("zxq, ") and r.caption_source == "offline" for r in kept)
    folder = out / "dataset" / "10_zxq woman"
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{r.image_id}.png" for r in kept] + [f"{r.image_id}.txt" for r in kept])
    with zipfile.ZipFile(out / "zxq_lora_dataset.zip") as archive:
        assert len(archive.namelist()) == 2 * len(kept) + 1
    job = read_job(out)
    assert job["state"] == "done" and all(job["stages"][s]["status"] == "done" for s in STAGES)
    assert job["stages"]["dedup"]["summary"]["dropped_by_stage"] == {"near": 2}
    for text in ("nothing leaves this machine", "dedup:near", "ingest:skipped", "offline: 4", "zxq_lora_dataset.zip"):
        assert text in output, text
    assert job_config(out).crop.output_size == 96 and job_config(out).package.class_word == "woman"


def test_a_second_build_finds_every_stage_up_to_date(built, work_dir):
    before = _mtimes(work_dir)
    args = [*built["args"][:4], str(work_dir), *built["args"][5:]]
    result = CliRunner().invoke(lora_app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("up to date") == len(STAGES)
    assert _mtimes(work_dir) == before
    assert not any(read_job(work_dir)["stages"][s]["recomputed"] for s in STAGES)


def test_a_crop_setting_change_recomputes_crops_captions_and_package_only(work_dir):
    before = _mtimes(work_dir)
    config = job_config(work_dir)
    changed = config.model_copy(update={"crop": config.crop.model_copy(update={"output_size": 80})})
    outcomes = run_stages(work_dir, STAGES, changed)
    assert {s: o.recomputed for s, o in outcomes.items()} == {
        "ingest": False, "dedup": False, "crops": True, "captions": True, "package": True,
    }
    after = _mtimes(work_dir)
    assert after["ingest.parquet"] == before["ingest.parquet"] and after["dedup.parquet"] == before["dedup.parquet"]
    assert after["crops.parquet"] != before["crops.parquet"] and after["manifest.parquet"] != before["manifest.parquet"]
    from PIL import Image

    crop = next((work_dir / "crops").glob("*.png"))
    assert Image.open(crop).size == (80, 80)


def test_a_manual_crop_box_recomputes_only_that_image_downstream(work_dir):
    kept = [d for d in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / "dedup.parquet")) if d.kept]
    target = kept[0].image_id
    before = _mtimes(work_dir)
    set_crop_box(work_dir, target, [10, 20, 110, 120])
    outcomes = run_stages(work_dir, ("crops", "captions", "package"))
    assert all(o.recomputed for o in outcomes.values())
    assert outcomes["captions"].summary["captioned"] == 1 and outcomes["captions"].summary["reused"] == len(kept) - 1
    crops = {r.image_id: r for r in CROP_RECORDS.rows(CROP_RECORDS.read(work_dir / "crops.parquet"))}
    assert crops[target].crop_source == "manual" and crops[target].crop_box == [10, 20, 110, 120]
    row = next(r for r in MANIFEST_RECORDS.rows(MANIFEST_RECORDS.read(work_dir / "manifest.parquet")) if r.image_id == target)
    assert row.crop_source == "manual" and row.crop_box == [10, 20, 110, 120]
    after = _mtimes(work_dir)
    assert after["ingest.parquet"] == before["ingest.parquet"] and after["dedup.parquet"] == before["dedup.parquet"]
    assert json.loads((work_dir / "crop_overrides.json").read_text()) == {target: [10, 20, 110, 120]}


def test_bad_crop_boxes_and_stage_order_are_refused_by_name(work_dir, tmp_path):
    decisions = DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / "dedup.parquet"))
    kept = next(d.image_id for d in decisions if d.kept)
    dropped = next(d.image_id for d in decisions if not d.kept)
    with pytest.raises(JobError, match="must be square"):
        set_crop_box(work_dir, kept, [0, 0, 100, 50])
    with pytest.raises(JobError, match="leaves the 256x"):
        set_crop_box(work_dir, kept, [200, 0, 300, 100])
    with pytest.raises(JobError, match="was dropped by dedup"):
        set_crop_box(work_dir, dropped, [0, 0, 50, 50])
    with pytest.raises(JobError, match="no ingested image 'nope'"):
        set_crop_box(work_dir, "nope", [0, 0, 50, 50])
    assert not (work_dir / "crop_overrides.json").exists()
    with pytest.raises(JobError, match="unknown stage 'train'"):
        run_stage(work_dir, "train")
    fresh = tmp_path / "fresh"
    with pytest.raises(JobError, match="no input recorded"):
        run_stage(fresh, "ingest", LoraConfig())
    with run_lock(work_dir), pytest.raises(JobBusyError, match="being processed by another run"):
        run_stage(work_dir, "package")
    gone = tmp_path / "gone.zip"
    shutil.copyfile(read_job(work_dir)["source"], gone)
    init_job(work_dir, gone, job_config(work_dir))
    gone.unlink()
    with pytest.raises(JobError, match="gone.zip of .* no longer exists"):
        run_stage(work_dir, "ingest")


def test_cli_refuses_a_file_that_is_not_a_zip(tmp_path):
    bogus = tmp_path / "photos.zip"
    bogus.write_text("not a zip at all")
    result = CliRunner().invoke(lora_app, ["build", "--input", str(bogus), "--output", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "photos.zip" in result.output and "Error" in result.output
    job = read_job(tmp_path / "out")
    assert job["state"] == "failed" and job["stages"]["ingest"]["status"] == "failed"


def test_cli_captions_through_the_endpoint_with_a_model_priority_list(built, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTION_KEY", "sk-never-stored")
    fake = CaptionServer(fail_models={"big-vlm"}, delay_s=0.1)
    out = tmp_path / "vlm"
    with serving(fake.app(), "caption VLM") as url:
        args = [*built["args"][:4], str(out), *built["args"][5:], "--caption-base-url", f"{url}/v1",
                "--caption-model", "big-vlm", "--caption-model", "small-vlm", "--caption-api-key-env", "CAPTION_KEY"]
        result = CliRunner().invoke(lora_app, args)
    assert result.exit_code == 0, result.output
    assert "vlm: 4" in result.output and "small-vlm: 4" in result.output and "downscaled crops" in result.output
    assert sorted(r["model"] for r in fake.requests) == ["big-vlm"] * 4 + ["small-vlm"] * 4  # 4 calls in flight at once
    assert all(r["size"] == (96, 96) for r in fake.requests)  # crops are 96 px, under max_side 512: sent as they are
    assert {c.model for c in read_captions(out)} == {"small-vlm"}
    assert fake.max_in_flight > 1  # CaptionConfig.concurrency (4) calls at once
    stored = (out / "job.json").read_text()
    assert "sk-never-stored" not in stored and '"api_key"' not in stored


def test_cli_crop_sets_a_box_and_rebuilds_from_crops(work_dir):
    kept = next(d.image_id for d in DEDUP_DECISIONS.rows(DEDUP_DECISIONS.read(work_dir / "dedup.parquet")) if d.kept)
    result = CliRunner().invoke(lora_app, ["crop", "--output", str(work_dir), kept, "0", "0", "128", "128"])
    assert result.exit_code == 0, result.output
    assert f"{kept}: crop [0, 0, 128, 128]; captions recomputed 1, reused 3" in result.output
    refused = CliRunner().invoke(lora_app, ["crop", "--output", str(work_dir), kept, "0", "0", "128", "64"])
    assert refused.exit_code == 2 and "must be square" in refused.output


def test_a_whole_offline_build_opens_no_socket(built, tmp_path, monkeypatch):
    import socket

    opened: list[object] = []

    def refuse(self, address, *args, **kwargs):
        opened.append(address)
        raise AssertionError(f"a socket was opened to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # a generic endpoint in the environment is not a caption endpoint
    monkeypatch.delenv("AESTHETIC_CAPTION_BASE_URL", raising=False)
    args = [*built["args"][:4], str(tmp_path / "offline"), *built["args"][5:]]
    result = CliRunner().invoke(lora_app, args)
    assert result.exit_code == 0, result.output
    assert opened == [] and "offline: 4" in result.output
