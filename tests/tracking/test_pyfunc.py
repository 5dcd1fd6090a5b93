"""The pyfunc's image inputs and the registered version's description."""

import base64
import io
import math
from pathlib import Path

import pytest
from PIL import Image

from aesthetic_platform.tracking.pyfunc import DATA_URI_PREFIX, _image_input
from aesthetic_platform.tracking.runs import DatasetRef, version_description


def test_a_data_uri_is_the_image_itself_and_a_bad_one_names_its_row():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 3), (200, 10, 10)).save(buffer, format="PNG")
    decoded = _image_input(DATA_URI_PREFIX + base64.b64encode(buffer.getvalue()).decode(), 0)
    assert decoded == buffer.getvalue()
    assert _image_input("images/b1/x.png", 0) == "images/b1/x.png"  # paths pass through unchanged
    with pytest.raises(ValueError, match="image_path row 3: a data URI whose base64 payload does not decode"):
        _image_input("data:image/png;base64,@@not base64@@", 3)


def test_the_version_description_names_run_key_dataset_digest_and_validation_accuracy():
    summary = {"run_key": "k123", "val_accuracy": {"total": 0.7123, "color": math.nan}}
    dataset = DatasetRef("preference_pairs", Path("/x/tables/preference_pairs.parquet"), "d456", "tables/preference_pairs.parquet")
    text = version_description("run9", summary, dataset)
    assert text == (
        "Training run run9, run key k123; dataset preference_pairs (tables/preference_pairs.parquet) digest d456; "
        "validation accuracy: total 71.2%, color n/a."
    )
