"""Scoring from the CLI and over HTTP, on a small trained model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from aesthetic_platform.registry import champion_swap
from aesthetic_platform.schemas import DEFAULT_DIMENSIONS
from aesthetic_platform.scoring import Scorer
from aesthetic_platform.serving import create_app, rank_best_of

REPO = Path(__file__).resolve().parents[2]
AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return folder


@pytest.fixture
def pngs(tmp_path) -> list[Path]:
    paths = []
    for i, size in enumerate([(96, 54), (64, 64), (48, 80)]):
        path = tmp_path / f"img{i}.png"
        Image.new("RGB", size, (40 * i, 120, 200 - 50 * i)).save(path)
        paths.append(path)
    return paths


def test_cli_score_prints_one_score_per_dimension(model_dir, pngs, tmp_path):
    env = {**os.environ, "AESTHETIC_HOME": str(tmp_path / "home")}
    out = subprocess.run([AESTHETIC, "score", str(pngs[0]), "--prompt", "a blue poster", "--model", str(model_dir), "--json"],
                         cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    (result,) = json.loads(out)["results"]
    assert set(result["scores"]) == set(DEFAULT_DIMENSIONS)
    assert all(isinstance(v, float) for v in result["scores"].values())
    table = subprocess.run([AESTHETIC, "score", *map(str, pngs), "-p", "a blue poster", "--model", str(model_dir), "--best-of"],
                           cwd=REPO, env=env, capture_output=True, text=True, check=True).stdout
    for dim in ("total", "composition", "color"):
        assert dim in table


def test_cli_score_uses_the_champion_and_explains_when_there_is_none(model_dir, pngs, tmp_path, data_root):
    env = {**os.environ, "AESTHETIC_HOME": str(data_root.root)}
    missing = subprocess.run([AESTHETIC, "score", str(pngs[0]), "-p", "x"], cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and "no champion model" in missing.stdout
    with champion_swap(data_root, model_dir, {"registered_model": "aesthetic-scorer", "version": "4", "run_key": "k1"}):
        pass
    out = subprocess.run(
        [AESTHETIC, "score", str(pngs[0]), "-p", "x", "--json"], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    body = json.loads(out.stdout)
    assert body["model"].endswith("champion")
    # which champion scored: scores from before and after a promotion can be told apart
    assert body["promoted_as"] == {"registered_model": "aesthetic-scorer", "version": "4", "run_key": "k1"}
    from aesthetic_platform.cli import served_model_info

    assert served_model_info(data_root.champion)["promoted_as"]["version"] == "4"
    assert "promoted_as" not in served_model_info(model_dir)  # any other model folder: its path alone


def test_http_score_and_best_of(model_dir, pngs):
    scorer = Scorer.from_pretrained(model_dir)
    client = TestClient(create_app(scorer, {"path": str(model_dir)}))
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in pngs]
    reply = client.post("/score", files=files, data={"prompt": "a blue poster", "best_of": "true"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert [r["image"] for r in body["results"]] == [p.name for p in pngs]
    direct = scorer.score([str(p) for p in pngs], ["a blue poster"] * 3)
    assert body["results"][1]["scores"]["total"] == pytest.approx(direct[1]["total"], abs=1e-5)
    totals = [r["scores"]["total"] for r in body["ranking"]]
    assert totals == sorted(totals, reverse=True) and [r["rank"] for r in body["ranking"]] == [1, 2, 3]


def test_http_rejects_bad_input(model_dir, pngs):
    client = TestClient(create_app(Scorer.from_pretrained(model_dir), {}))
    bad = client.post("/score", files=[("files", ("x.png", b"not an image", "image/png"))], data={"prompt": "p"})
    assert bad.status_code == 422 and "x.png" in bad.json()["detail"]
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in pngs]
    mismatch = client.post("/score", files=files, data={"prompt": ["a", "b"]})
    assert mismatch.status_code == 422 and "one per image" in mismatch.json()["detail"]
    assert client.get("/health").json()["status"] == "ok"


def test_rank_best_of_needs_total():
    with pytest.raises(ValueError, match="no 'total' head"):
        rank_best_of(["a"], [{"color": 1.0}])
