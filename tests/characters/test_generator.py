"""The classifier-guided generator: no transposed convolutions, sizes, and the examiner's confidence rising over a short run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import ExtWorld

ext_world = ext_fixtures.ext_world
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_generator_has_no_transposed_convolution_and_reaches_the_classifier_size() -> None:
    from aesthetic_platform.characters.generator import Generator, UpBlock, transposed_convolutions, upsampling_plan

    assert upsampling_plan(224) == (7, 5) and upsampling_plan(32) == (4, 3) and upsampling_plan(48) == (6, 3)
    big = Generator(classes=3, noise_dim=8, embedding_dim=4, base_channels=32, image_size=224)
    assert transposed_convolutions(big) == []
    assert not any(isinstance(m, (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)) for m in big.modules())
    ups = [m for m in big.modules() if isinstance(m, UpBlock)]
    assert len(ups) == 5
    assert all(isinstance(b[0], torch.nn.Upsample) and isinstance(b[1], torch.nn.Conv2d) and b[1].stride == (1, 1) for b in ups)
    with torch.no_grad():
        out = big(torch.randn(2, 8), torch.tensor([0, 2]))
    assert out.shape == (2, 3, 224, 224) and out.min() >= -1 and out.max() <= 1
    # the detector itself is not blind: a transposed convolution is found by name
    assert transposed_convolutions(torch.nn.Sequential(torch.nn.ConvTranspose2d(3, 3, 4, 2, 1))) == ["0"]


@pytest.mark.slow
def test_target_class_confidence_rises_over_a_short_run(ext_world: ExtWorld, tmp_path: Path) -> None:
    from aesthetic_platform.characters.config import GeneratorConfig
    from aesthetic_platform.characters.generator import (
        GeneratorError,
        confidence_plot,
        load_generator,
        run_generator_from_model,
        transposed_convolutions,
        vgg16_weights,
    )

    config = GeneratorConfig(image_size=32, noise_dim=16, class_embedding_dim=8, base_channels=32, disc_channels=8, epochs=3,
                             batch_size=8, learning_rate=2e-3, target_classes="character_000,character_001,character_002",
                             samples_per_class=4, device="cpu")
    seen: list[int] = []
    result = run_generator_from_model(ext_world.model_dir, config, tmp_path / "run", on_epoch=lambda e, m: seen.append(e))
    print(result.initial_confidence, result.confidences)
    assert seen == [1, 2, 3] and len(result.history) == 3
    assert result.confidences[-1] > result.confidences[0]  # the examiner believes the last epoch's samples more
    assert result.confidences[-1] > result.initial_confidence
    for epoch in result.history:
        assert set(epoch) == {"d_loss", "g_loss", "adv", "cls", "perc", "confidence"}
        expected = 0.1 * epoch["adv"] + 0.2 * epoch["cls"] + 10 * epoch["perc"]  # the seed's weights (means of per-step values)
        assert epoch["g_loss"] == pytest.approx(expected, rel=1e-4)
    assert result.perceptual == ("vgg16" if vgg16_weights() is not None else "classifier")
    grids = [tmp_path / "run" / f"samples_epoch_{n}.png" for n in (1, 2, 3)]
    assert result.samples == grids
    with Image.open(grids[-1]) as grid:
        assert grid.size == (4 * 34 + 2, 3 * 34 + 2)  # 4 samples x 3 classes of 32 px, 2 px padding
    generator, classes = load_generator(tmp_path / "run")
    assert classes == ["character_000", "character_001", "character_002"] and transposed_convolutions(generator) == []
    assert json.loads((tmp_path / "run" / "history.json").read_text())["history"] == result.history
    assert confidence_plot(result, tmp_path / "plots")["generator_curves"].exists()
    with pytest.raises(GeneratorError, match="not classes of the classifier"):
        run_generator_from_model(ext_world.model_dir, config.model_copy(update={"target_classes": "nobody"}), tmp_path / "bad")


def test_perceptual_network_follows_the_local_vgg16_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aesthetic_platform.characters.generator import VGG16_FILE, GeneratorError, Perceptual, choose_perceptual, vgg16_weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    assert vgg16_weights() is None and choose_perceptual("auto") == "classifier"
    with pytest.raises(GeneratorError, match="VGG16 weights not found"):
        Perceptual("vgg16", torch.nn.Identity(), lambda x: x)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / VGG16_FILE).write_bytes(b"")
    assert vgg16_weights() == tmp_path / "checkpoints" / VGG16_FILE
    assert choose_perceptual("auto") == "vgg16" and choose_perceptual("classifier") == "classifier"
