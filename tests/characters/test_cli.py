"""``aesthetic characters predict|add`` through Typer's runner: teach a character, recognise it, refuse bad input clearly."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.characters import ext_fixtures
from tests.characters.ext_fixtures import ExtWorld, sqlite_url

ext_world = ext_fixtures.ext_world
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.mark.slow
def test_add_then_predict_and_clear_errors(ext_world: ExtWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from aesthetic_platform.characters.cli import characters_app
    from aesthetic_platform.characters.config import RenderConfig
    from aesthetic_platform.characters.prototypes import load_trained
    from aesthetic_platform.characters.render import render_dataset

    runner = CliRunner()
    common = ["--model", str(ext_world.model_dir), "--db-url", sqlite_url(tmp_path), "--home", str(tmp_path / "home"), "--device", "cpu"]
    train = load_trained(ext_world.model_dir).by_class("train")
    images = [str(p) for p in train["character_003"][:2]]

    empty = runner.invoke(characters_app, ["predict", *images, *common])
    assert empty.exit_code == 2 and "no prototypes" in empty.output and "character-classifier@" in empty.output

    for name in ("character_003", "character_005"):
        added = runner.invoke(characters_app, ["add", name, *[str(p) for p in train[name][:5]], *common])
        assert added.exit_code == 0, added.output
        assert f"{name}: added from 5 image(s)" in added.output
    stranger = render_dataset(tmp_path / "new", RenderConfig(characters=2, images_per_character=6, image_size=32, first_character=40))
    shots = sorted(stranger.class_dir(stranger.characters[0].name).glob("*.png"))
    added = runner.invoke(characters_app, ["add", "Newcomer", *[str(p) for p in shots[:5]], *common])
    assert added.exit_code == 0 and "3 classes" in added.output, added.output
    again = runner.invoke(characters_app, ["add", "Newcomer", str(shots[5]), *common])
    assert again.exit_code == 2 and "already exists" in again.output and "--update" in again.output
    updated = runner.invoke(characters_app, ["add", "Newcomer", str(shots[5]), "--update", *common])
    assert updated.exit_code == 0 and "6 member image(s)" in updated.output, updated.output

    monkeypatch.chdir(tmp_path)  # short relative names keep the table's rows on one line each
    for short, source in (("a.png", images[0]), ("b.png", images[1]), ("s.png", shots[0])):
        shutil.copy(source, tmp_path / short)
    predicted = runner.invoke(characters_app, ["predict", "a.png", "b.png", "s.png", *common])
    assert predicted.exit_code == 0, predicted.output
    assert "not calibrated" in predicted.output  # sets built by `add` alone have no threshold: never 'unknown'
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip() for line in predicted.output.splitlines() if line.count("│") >= 4}
    assert rows["s.png"] == "Newcomer"  # one of its own shots comes back as the new character
    assert rows["a.png"] in {"character_003", "character_005", "Newcomer"}

    # once calibrated, a character the set does not know comes back unknown (its images set the threshold: target rate 0)
    from aesthetic_platform.characters.classifier import CharacterClassifier
    from aesthetic_platform.characters.prototypes import PrototypeDatabase
    from aesthetic_platform.embeddings import EmbeddingStoreConfig, Store

    other = sorted(stranger.class_dir(stranger.characters[1].name).glob("*.png"))
    with Store.open(EmbeddingStoreConfig(db_url=sqlite_url(tmp_path))) as store:
        db = PrototypeDatabase(store, CharacterClassifier.from_pretrained(ext_world.model_dir), device="cpu")
        db.calibrate([(p, "character_003") for p in train["character_003"][5:7]], other, target_false_accept=0.0)
    shutil.copy(other[0], tmp_path / "o.png")
    calibrated = runner.invoke(characters_app, ["predict", "o.png", *common])
    assert calibrated.exit_code == 0 and "not calibrated" not in calibrated.output, calibrated.output
    assert "unknown (nearest" in calibrated.output

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but not really")
    bad = runner.invoke(characters_app, ["predict", images[0], str(broken), *common])
    assert bad.exit_code == 2 and "broken.png" in bad.output and "image 1" in bad.output
    missing = runner.invoke(characters_app, ["add", "Ghost", str(tmp_path / "nope.png"), *common])
    assert missing.exit_code == 2 and "nope.png" in missing.output
    no_model = runner.invoke(characters_app, ["predict", images[0], "--model", str(tmp_path), "--db-url", sqlite_url(tmp_path)])
    assert no_model.exit_code == 2 and "not a saved character classifier" in no_model.output


@pytest.mark.slow
def test_without_model_the_newest_classifier_under_the_data_root_is_used(ext_world: ExtWorld, tmp_path: Path) -> None:
    import os
    import shutil

    from aesthetic_platform.characters.cli import characters_app
    from aesthetic_platform.characters.prototypes import latest_classifier_dir
    from aesthetic_platform.paths import DataRoot

    runner = CliRunner()
    root = DataRoot.from_env(tmp_path / "home")
    image = str(next((ext_world.dataset_dir / "character_000").glob("*.png")))
    common = ["--home", str(root.root), "--db-url", sqlite_url(tmp_path), "--device", "cpu"]
    assert latest_classifier_dir(root) is None
    none = runner.invoke(characters_app, ["predict", image, *common])
    assert none.exit_code == 2 and "no saved character classifier" in none.output and "--model" in none.output

    older, newer = root.character_run("classifiers", "run-a"), root.character_run("classifiers", "run-b")
    for folder in (newer, older):
        shutil.copytree(ext_world.model_dir, folder)
    stamp = (older / "model.safetensors").stat().st_mtime
    os.utime(newer / "model.safetensors", (stamp + 60, stamp + 60))
    (root.character_classifiers / "run-c").mkdir()  # a folder without weights (an interrupted run) is not a classifier
    assert latest_classifier_dir(root) == newer
    found = runner.invoke(characters_app, ["predict", image, *common])
    assert found.exit_code == 2 and "no prototypes" in found.output and "character-classifier@" in found.output, found.output
