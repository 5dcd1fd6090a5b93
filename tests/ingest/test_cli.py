"""``aesthetic crawl ...`` and ``aesthetic audit prompts`` through the core command line."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from aesthetic_platform.cli import app

runner = CliRunner()


def test_crawl_commands(site, home, tmp_path):
    settings = tmp_path / "crawl.json"
    settings.write_text(json.dumps({"read_timeout_s": 0.3, "max_attempts": 2, "backoff_initial_s": 0.01, "min_image_side": 32}))
    assert runner.invoke(app, ["crawl", "add", "fixture", "--gallery", site.start_url]).exit_code == 0
    bad = runner.invoke(app, ["crawl", "add", "bad name!", "--gallery", site.start_url])
    assert bad.exit_code == 2 and "invalid crawl source" in bad.output
    result = runner.invoke(app, ["crawl", "run", "fixture", "--config", str(settings), "--rate", "100", "--per-host", "4", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["images_stored"] == 16 and report["skipped"]["redirect_loop"] == 1
    status = runner.invoke(app, ["crawl", "status", "fixture"])
    assert status.exit_code == 0 and "robots_disallowed" in status.output and "timeout" in status.output
    listing = runner.invoke(app, ["crawl", "list"])
    assert "fixture" in listing.output and "16" in listing.output
    assert runner.invoke(app, ["crawl", "run", "nobody"]).exit_code == 2
    from aesthetic_platform.atomic import held_exclusively
    from aesthetic_platform.ingest.crawl import LOCK_FILE
    from aesthetic_platform.paths import DataRoot

    with held_exclusively(DataRoot.from_env(home).crawl_frontier("fixture").with_name(LOCK_FILE), RuntimeError):
        busy = runner.invoke(app, ["crawl", "run", "fixture"])  # a crawl of the source is running elsewhere
    assert busy.exit_code == 1 and "'fixture' is being crawled by another process" in busy.output
    assert "Traceback" not in busy.output


def test_audit_prompts_command(tmp_path):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("text\nA calm lighthouse poster\nＡ ＧＯＲＹ battle poster\n色情 海报\n", encoding="utf-8")
    result = runner.invoke(app, ["audit", "prompts", str(prompts), "--json"])
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.output.strip().splitlines()]
    assert [line["status"] for line in lines] == ["passed", "flagged", "flagged"]
    assert lines[1]["categories"] == ["violence"] and lines[2]["categories"] == ["sexual"]
    clean = tmp_path / "clean.json"
    clean.write_text(json.dumps(["A calm lighthouse poster"]))
    assert runner.invoke(app, ["audit", "prompts", str(clean)]).exit_code == 0
