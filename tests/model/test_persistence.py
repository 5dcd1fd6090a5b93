"""save_pretrained -> from_pretrained gives identical outputs; the folder is self-describing."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from aesthetic_platform.model import AestheticScorer
from aesthetic_platform.model.scorer_model import CONFIG_FILE, TOKENIZER_DIR, WEIGHTS_FILE
from tests.model.conftest import build_tiny_model, image_batch

PROMPTS = ["国潮风格的月饼礼盒海报", "a minimalist blue coffee poster"]


def _outputs(model, images, prompts):
    with torch.no_grad():
        return model(image_batch(model, images), **model.tokenize(prompts))


def test_round_trip_gives_identical_outputs(tmp_path, sample_images):
    model = build_tiny_model(dimensions=("total", "color", "sharpness")).eval()
    with torch.no_grad():  # move the heads away from their init so a silent re-init would show
        for param in model.heads.parameters():
            param.add_(0.05)
    images = [sample_images["astronaut"], sample_images["poster_9:16"]]
    before = _outputs(model, images, PROMPTS)

    model.save_pretrained(tmp_path / "ckpt")
    loaded = AestheticScorer.from_pretrained(tmp_path / "ckpt").eval()
    after = _outputs(loaded, images, PROMPTS)

    assert loaded.dimensions == ("total", "color", "sharpness")
    assert loaded.tokenizer(PROMPTS[0])["input_ids"] == model.tokenizer(PROMPTS[0])["input_ids"]
    for dim in model.dimensions:
        assert torch.equal(before[dim], after[dim]), dim


def test_checkpoint_folder_holds_config_weights_and_tokenizer(tmp_path):
    model = build_tiny_model()
    folder = model.save_pretrained(tmp_path / "ckpt")
    stored = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    assert stored["dimensions"] == list(model.dimensions)
    assert stored["image"]["open_clip_config"]["vision_cfg"]["width"] == 64
    assert stored["image"]["pretrained"] is None, "a checkpoint never re-downloads tower weights"
    assert stored["text"]["architecture"]["hidden_size"] == 64
    assert stored["text"]["pretrained"] is None
    assert (folder / TOKENIZER_DIR / "tokenizer.json").is_file()
    weights = load_file(str(folder / WEIGHTS_FILE))
    assert set(weights) == set(model.state_dict())


def test_loading_a_wrong_folder_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json is missing"):
        AestheticScorer.from_pretrained(tmp_path)
    model = build_tiny_model()
    folder = model.save_pretrained(tmp_path / "ckpt")
    (folder / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match=WEIGHTS_FILE):
        AestheticScorer.from_pretrained(folder)


def test_weights_from_another_architecture_are_rejected(tmp_path):
    small = build_tiny_model().save_pretrained(tmp_path / "small")
    other = build_tiny_model(dimensions=("total",)).save_pretrained(tmp_path / "other")
    (small / WEIGHTS_FILE).write_bytes((other / WEIGHTS_FILE).read_bytes())
    with pytest.raises(ValueError, match="does not match its config"):
        AestheticScorer.from_pretrained(small)
