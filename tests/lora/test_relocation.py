"""A work folder whose upload lives inside it survives a move of the data root: nothing is recomputed."""

from __future__ import annotations

import shutil

import pytest

from aesthetic_platform.lora.config import LoraConfig
from aesthetic_platform.lora.pipeline import STAGES, build, package_path, read_job, run_stages
from tests.fixtures.lora_photos import SMALL_CROP, photo_zip


@pytest.mark.slow
def test_a_moved_data_root_finds_its_uploads_and_keeps_every_stage(tmp_path):
    config = LoraConfig.model_validate({"dedup": {"analysis_side": 256}, "crop": SMALL_CROP})
    work = tmp_path / "home" / "lora" / "up-1"
    work.mkdir(parents=True)
    upload = work / "upload.zip"
    shutil.copyfile(photo_zip(tmp_path / "photos.zip"), upload)
    build(upload, work, config)
    assert read_job(work)["source"] == "upload.zip"

    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "home", moved)
    outcomes = run_stages(moved / "lora" / "up-1", STAGES, config)
    assert {stage: outcome.recomputed for stage, outcome in outcomes.items()} == dict.fromkeys(STAGES, False)
    assert package_path(moved / "lora" / "up-1", outcomes["package"].summary, "zip").is_file()  # the summary moved along
