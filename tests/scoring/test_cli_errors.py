"""`aesthetic score` and `aesthetic check-prompts` on bad input: exit 2 and one line naming the file and the problem."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from aesthetic_platform.cli import app
from aesthetic_platform.model.config import named_config
from aesthetic_platform.model.scorer_model import AestheticScorer
from tests.fixtures.hostile_images import bomb_png, encoded, photo, png16

REPO = Path(__file__).resolve().parents[2]
AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    AestheticScorer(named_config("tiny")).save_pretrained(folder)
    return folder


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "good.png"
    photo().save(path)
    return path


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # ended on purpose, not by an exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def _file(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("bomb.png", bomb_png(), "the limit is 64,000,000 pixels"),
        ("cut.png", encoded(photo(), "PNG")[:3000], "cannot be decoded"),
        ("notes.png", b"these are notes, not pixels", "not an image in an accepted format"),
        ("empty.jpg", b"", "not an image in an accepted format"),
    ],
)
def test_score_refuses_a_bad_image_in_one_line(model_dir, good, tmp_path, name, content, problem):
    bad = _file(tmp_path, name, content)
    line = one_error_line(CliRunner().invoke(app, ["score", str(good), str(bad), "-p", "a poster", "--model", str(model_dir)]))
    assert str(bad) in line and problem in line


def test_score_refuses_missing_files_and_folders(model_dir, good, tmp_path):
    line = one_error_line(CliRunner().invoke(app, ["score", str(tmp_path / "gone.png"), "-p", "x", "--model", str(model_dir)]))
    assert "gone.png" in line and "no such file" in line
    line = one_error_line(CliRunner().invoke(app, ["score", str(tmp_path), "-p", "x", "--model", str(model_dir)]))
    assert str(tmp_path) in line and "not a regular file" in line


@pytest.mark.parametrize(("prompt", "problem"), [("", "empty"), ("   ", "empty"), ("a red poster " * 60, "at most 128 tokens")])
def test_score_refuses_a_bad_prompt_in_one_line(model_dir, good, prompt, problem):
    line = one_error_line(CliRunner().invoke(app, ["score", str(good), "-p", prompt, "--model", str(model_dir)]))
    assert "--prompt" in line and problem in line


def test_score_refuses_a_damaged_model_folder_in_one_line(model_dir, good, tmp_path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    line = one_error_line(CliRunner().invoke(app, ["score", str(good), "-p", "x", "--model", str(broken)]))
    assert str(broken) in line and "cannot load the model" in line


def test_a_16_bit_png_scores_from_the_command_line(model_dir, tmp_path):
    path = _file(tmp_path, "deep.png", png16(np.full((64, 96), 40000, dtype=np.uint16)))
    result = CliRunner().invoke(app, ["score", str(path), "-p", "a poster", "--model", str(model_dir), "--json"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.output)["results"][0]["scores"]) == set(named_config("tiny").dimensions)


def test_skip_unreadable_scores_the_rest_and_lists_what_it_skipped(model_dir, good, tmp_path):
    """A long call (past one chunk, so the progress bar runs) with a truncated and a missing file among the good ones."""
    cut = _file(tmp_path, "cut.png", encoded(photo(), "PNG")[:3000])
    goods = [str(good)] * 17
    args = ["score", *goods[:8], str(cut), *goods[8:], str(tmp_path / "gone.png"), "-p", "a poster", "--model", str(model_dir)]
    result = CliRunner().invoke(app, [*args, "--skip-unreadable", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)  # the progress bar, if any, is on stderr
    assert len(body["results"]) == 17 and {r["image"] for r in body["results"]} == {str(good)}
    assert [entry["image"] for entry in body["skipped"]] == [str(cut), str(tmp_path / "gone.png")]
    assert "cannot be decoded" in body["skipped"][0]["problem"] and "no such file" in body["skipped"][1]["problem"]
    table = CliRunner().invoke(app, [*args, "--skip-unreadable", "--best-of"])
    assert table.exit_code == 0, table.output
    assert f"skipped {cut}: " in table.stdout and "2 of 19 images skipped" in table.stdout
    assert str(cut) in one_error_line(CliRunner().invoke(app, args))  # without the flag: stops at the first, as before
    line = one_error_line(CliRunner().invoke(app, ["score", str(cut), "-p", "x", "--model", str(model_dir), "--skip-unreadable"]))
    assert "none of the 1 images could be read" in line and str(cut) in line


@pytest.mark.parametrize(
    ("name", "content", "fragments"),
    [
        ("deep.json", b"[" * 100_000 + b"]" * 100_000, ["top level", "nested too deeply"]),
        ("huge.csv", b'text\nok\n"' + b"x" * 200_000 + b'"\n', ["line 3", "field 'text'", "131,072"]),
        ("binary.csv", b"text\n\xff\xfe\xfa\n", ["line 2", "not UTF-8"]),
        ("blank.json", b'["   "]', ["record 1", "field 'text'", "at least 1 character"]),
        ("long.csv", b"text\n" + b"y" * 2001 + b"\n", ["line 2", "at most 2000 characters"]),
    ],
)
def test_check_prompts_refuses_hostile_files_in_one_line(tmp_path, name, content, fragments):
    path = _file(tmp_path, name, content)
    line = one_error_line(CliRunner().invoke(app, ["check-prompts", str(path)]))
    assert str(path) in line
    for fragment in fragments:
        assert fragment in line


def test_check_prompts_refuses_a_folder_and_a_missing_file(tmp_path):
    assert "not a regular file" in one_error_line(CliRunner().invoke(app, ["check-prompts", str(tmp_path)]))
    assert "no such file" in one_error_line(CliRunner().invoke(app, ["check-prompts", str(tmp_path / "none.csv")]))


def test_the_installed_command_prints_one_line_and_debug_adds_the_traceback(model_dir, tmp_path):
    bomb = _file(tmp_path, "bomb.png", bomb_png())
    env = {**os.environ, "AESTHETIC_HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}  # the code under test
    command = [AESTHETIC, "score", str(bomb), "-p", "a poster", "--model", str(model_dir)]
    plain = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert plain.returncode == 2
    lines = [line for line in (plain.stdout + plain.stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and "bomb.png" in lines[0] and "12000x12000" in lines[0], plain.stdout + plain.stderr
    debug = subprocess.run([AESTHETIC, "--debug", *command[1:]], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert debug.returncode == 2
    assert "Traceback" in debug.stdout + debug.stderr and "ImageTooLargeError" in debug.stdout + debug.stderr
