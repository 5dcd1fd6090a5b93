"""What the ``aesthetic`` console script loads before a trivial command runs.

The script's module (``aesthetic_platform.jobs.cli``) is imported for every command, so
whatever it loads eagerly is paid by ``aesthetic batch list`` too; a fresh interpreter
shows what a user's process would hold.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: Loaded by the commands that need them (LoRA build, captions, scoring, training), never by the script itself.
HEAVY = (
    "openai",
    "polars",
    "torch",
    "transformers",
    "mlflow",
    "open_clip",
    "sqlalchemy",
    "dagster",
    "PIL",
    "numpy",
    "aesthetic_platform.llm",
    "aesthetic_platform.lora.config",
    "aesthetic_platform.lora.pipeline",
    "aesthetic_platform.lora.captions",
)

#: ``batch list`` opens the Dagster instance (dagster and its SQLite storage) and nothing else.
NOT_FOR_BATCH_LIST = (
    "openai", "polars", "torch", "transformers", "mlflow", "open_clip", "PIL", "aesthetic_platform.llm",
    "aesthetic_platform.lora.pipeline", "aesthetic_platform.schemas",
)


def _loaded_after(code: str, env: dict[str, str] | None = None) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True, env=env).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def test_importing_the_console_script_loads_no_heavy_library():
    loaded = _loaded_after("import aesthetic_platform.jobs.cli")
    assert sorted(loaded & set(HEAVY)) == []


def test_batch_list_loads_only_the_dagster_instance(tmp_path):
    code = (
        "from aesthetic_platform.jobs.cli import app\n"
        "try:\n    app(['batch', 'list'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    loaded = _loaded_after(code, env={**os.environ, "AESTHETIC_HOME": str(tmp_path)})
    assert "dagster" in loaded  # the command did run
    assert sorted(loaded & set(NOT_FOR_BATCH_LIST)) == []


def test_lora_commands_still_find_their_pipeline(tmp_path):
    """The pipeline is imported inside the commands: a bad input still reaches it and gets its own message."""
    from typer.testing import CliRunner

    from aesthetic_platform.lora.cli import lora_app

    not_a_zip = tmp_path / "photos.zip"
    not_a_zip.write_bytes(b"not a zip archive")
    result = CliRunner().invoke(lora_app, ["build", "--input", str(not_a_zip), "--output", str(tmp_path / "work")])
    assert result.exit_code == 2, result.output
    assert "not a readable ZIP archive" in result.output
