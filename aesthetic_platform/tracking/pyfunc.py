"""The student as an MLflow pyfunc: image paths + prompts in, one column per dimension out."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

PYFUNC_NAME = "aesthetic_scorer"
INPUT_COLUMNS = ("image_path", "prompt")
#: An ``image_path`` may instead carry the image itself, as a base64 PNG/JPEG data URI (the input example does).
DATA_URI_PREFIX = "data:image/png;base64,"


def _image_input(value: Any, index: int) -> Any:
    if isinstance(value, str) and value.startswith("data:image/") and ";base64," in value:
        try:
            return base64.b64decode(value.split(",", 1)[1], validate=True)
        except ValueError:
            raise ValueError(f"image_path row {index}: a data URI whose base64 payload does not decode") from None
    return value


class AestheticScorerPyfunc(PythonModel):
    """``predict`` takes a DataFrame with ``image_path`` (a file path, or a ``data:image/...;base64,`` URI) and ``prompt`` columns."""

    def load_context(self, context: Any) -> None:
        from aesthetic_platform.scoring import Scorer

        self.scorer = Scorer.from_pretrained(context.artifacts["model"])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        missing = [c for c in INPUT_COLUMNS if c not in model_input.columns]
        if missing:
            raise ValueError(f"input lacks columns {missing}; expected {list(INPUT_COLUMNS)}")
        images = [_image_input(value, index) for index, value in enumerate(model_input["image_path"])]
        scores = self.scorer.score(images, list(model_input["prompt"]))
        return pd.DataFrame(scores)


def signature_for(dimensions: list[str]) -> ModelSignature:
    return ModelSignature(
        inputs=Schema([ColSpec("string", column) for column in INPUT_COLUMNS]),
        outputs=Schema([ColSpec("double", dim) for dim in dimensions]),
    )


def log_and_register(
    model_dir: Path, dimensions: list[str], registered_model: str, example: tuple[str, str] | None = None,
    description: str | None = None,
) -> str:
    """Log the checkpoint as a pyfunc in the active run and register a new version; returns it.

    ``example`` (an image, inlined as a data URI, and its prompt from the training data) becomes
    the model's input example, so the MLflow UI shows callers exactly what ``predict`` takes.
    ``description`` goes on the registered version: the registry list shows what it was trained on."""
    input_example = pd.DataFrame({"image_path": [example[0]], "prompt": [example[1]]}) if example else None
    info = mlflow.pyfunc.log_model(
        name=PYFUNC_NAME,
        python_model=AestheticScorerPyfunc(),
        artifacts={"model": str(model_dir)},
        signature=signature_for(dimensions),
        registered_model_name=registered_model,
        input_example=input_example,
        pip_requirements=["aesthetic-platform", "torch", "open_clip_torch", "transformers", "pillow", "pandas"],
    )
    version = str(info.registered_model_version)
    if description:
        mlflow.MlflowClient().update_model_version(registered_model, version, description=description)
    return version
