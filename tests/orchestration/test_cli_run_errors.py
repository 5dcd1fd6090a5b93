"""Pipeline commands fail in one line: a bad prompt file before any run, a failed step after one."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
AESTHETIC = str(Path(sys.executable).with_name("aesthetic"))


@pytest.mark.slow
def test_a_bad_prompt_file_is_one_line_and_starts_no_run(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,colour\nhello,red\n", encoding="utf-8")
    home = tmp_path / "home"
    env = {**os.environ, "AESTHETIC_HOME": str(home)}
    out = subprocess.run(
        [AESTHETIC, "materialize", "-b", "x-0001", "--source", "file", "--file", str(bad)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 2
    assert out.stdout.strip().splitlines() == [f"{bad}: line 1, field 'colour': unknown column; accepted columns are "
                                               "text, language, category, subject, style, palette, layout, slogan"]
    assert "Traceback" not in out.stderr
    listed = subprocess.run([AESTHETIC, "batch", "list"], cwd=REPO, env=env, capture_output=True, text=True, check=True, timeout=300)
    assert listed.stdout.split() == []  # the batch was never registered, nothing ran


@pytest.fixture
def failing_llm(monkeypatch, tmp_path):
    """A prompt LLM that is down: the ``prompts`` step raises inside the run."""
    from aesthetic_platform.prompts.llm import LLMPromptError, LLMPromptSource

    def down(self, *args, **kwargs):
        raise LLMPromptError("prompt LLM 'm' at http://127.0.0.1:9 failed: Connection error.")

    monkeypatch.setattr(LLMPromptSource, "generate", down)
    for name in ("AESTHETIC_HOME", "DAGSTER_HOME"):  # the command points both at the data root; restored afterwards
        monkeypatch.setenv(name, str(tmp_path / "home"))
    return tmp_path / "home"


def _invoke(*args: str):
    from aesthetic_platform.jobs.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_a_failed_step_is_one_line_naming_the_step_and_its_error(failing_llm):
    result = _invoke("materialize", "-b", "x-0001", "--source", "llm", "--prompts", "2")
    assert result.exit_code == 1
    failures = [line for line in result.output.splitlines() if "failed" in line]
    assert len(failures) == 1, result.output
    assert "step prompts failed: aesthetic_platform.prompts.llm.LLMPromptError: prompt LLM 'm' at http://127.0.0.1:9 failed" in failures[0]
    assert "Stack Trace" not in result.output and "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an exception escaping the command


def test_debug_shows_dagster_s_log_with_the_traceback(failing_llm):
    result = _invoke("--debug", "materialize", "-b", "x-0002", "--source", "llm", "--prompts", "2")
    assert result.exit_code == 1
    assert "Stack Trace" in result.output and "step prompts failed" in result.output


def test_failure_summary_follows_the_cause_past_dagster_s_wrapper(tmp_path):
    import dagster as dg

    from aesthetic_platform.assets.data_engine import PromptsConfig
    from aesthetic_platform.jobs.launch import failure_summary, materialize_batches
    from aesthetic_platform.paths import DataRoot

    missing = tmp_path / "gone.csv"
    run_config = dg.RunConfig(ops={"prompts": PromptsConfig(source="file", file_path=str(missing))})
    with dg.instance_for_test() as instance:
        (result,) = materialize_batches(DataRoot(tmp_path).ensure(), ["b1"], job_name="judging_chain", run_config=run_config,
                                        instance=instance)
    assert not result.success
    summary = failure_summary(result)
    assert summary.startswith("step prompts failed: ") and "PromptFileError" in summary and str(missing) in summary
    assert "\n" not in summary and "DagsterExecutionStepExecutionError" not in summary
