"""Public inference API: Scorer.from_pretrained(path).score(images, prompts)."""

from __future__ import annotations

import pytest
import torch

from aesthetic_platform.scoring import Scorer
from tests.model.conftest import image_batch

PROMPT = "国潮风格的月饼礼盒海报，红色与金色"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tiny_model):
    return tiny_model.save_pretrained(tmp_path_factory.mktemp("scorer") / "ckpt")


def test_scores_real_images_of_any_size_from_paths_and_pil(checkpoint, sample_images, tmp_path):
    scorer = Scorer.from_pretrained(checkpoint, device="cpu", batch_size=3)
    names = list(sample_images)
    inputs = []
    for index, name in enumerate(names):
        if index % 2:
            path = tmp_path / f"{index}.png"
            sample_images[name].save(path)
            inputs.append(str(path))
        else:
            inputs.append(sample_images[name])
    sizes = {image.size for image in sample_images.values()}
    assert len(sizes) == len(sample_images), "every image has its own size"
    results = scorer.score(inputs, [PROMPT] * len(inputs))
    assert len(results) == len(inputs)
    for result in results:
        assert list(result) == list(scorer.dimensions)
        assert all(isinstance(v, float) and v == v for v in result.values())
    alone = [scorer.score(image, PROMPT)[0] for image in inputs]
    for batched, single in zip(results, alone, strict=True):
        for dim in scorer.dimensions:
            assert abs(batched[dim] - single[dim]) <= TOLERANCE


def test_scores_follow_the_model_and_the_prompt(checkpoint, sample_images, tiny_model):
    scorer = Scorer.from_pretrained(checkpoint, device="cpu")
    image = sample_images["poster_3:4"]
    with torch.no_grad():
        expected = tiny_model(image_batch(tiny_model, [image]), **tiny_model.tokenize([PROMPT]))
    got = scorer.score([image], [PROMPT])[0]
    for dim in scorer.dimensions:
        assert got[dim] == pytest.approx(float(expected[dim][0]), abs=1e-6)
    other = scorer.score([image], ["a photo of an astronaut"])[0]
    assert other != got, "the prompt is part of the input"


def test_bad_calls_are_named(checkpoint, tmp_path, sample_images):
    scorer = Scorer.from_pretrained(checkpoint, device="cpu")
    with pytest.raises(ValueError, match="2 images but 1 prompts"):
        scorer.score([sample_images["astronaut"]] * 2, ["a", "b", "c"][:1])
    with pytest.raises(ValueError, match="image 1: .*nope.png"):
        scorer.score([sample_images["astronaut"], tmp_path / "nope.png"], PROMPT)
    with pytest.raises(ValueError, match="batch_size"):
        Scorer(scorer.model, batch_size=0)


def test_a_shared_prompt_goes_through_the_text_tower_once_and_scores_as_alone(checkpoint, sample_images):
    scorer = Scorer.from_pretrained(checkpoint, device="cpu", batch_size=2)
    images = list(sample_images.values())
    prompts = [PROMPT if index % 3 else "a blue poster" for index in range(len(images))]
    calls = []
    handle = scorer.model.text_encoder.register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        results = scorer.score(images, prompts)
    finally:
        handle.remove()
    assert len(calls) == 1, "two distinct prompts fit one text batch, whatever the number of images"
    for image, prompt, result in zip(images, prompts, results, strict=True):
        alone = scorer.score(image, prompt)[0]
        assert all(abs(result[dim] - alone[dim]) <= TOLERANCE for dim in scorer.dimensions)


def test_threaded_preparation_reports_the_first_bad_image_by_index(checkpoint, sample_images, tmp_path):
    scorer = Scorer.from_pretrained(checkpoint, device="cpu")
    scorer.prepare_workers = 4
    good = list(sample_images.values())
    with pytest.raises(ValueError, match=r"image 2: .*missing-a\.png") as caught:
        scorer.score([*good[:2], str(tmp_path / "missing-a.png"), good[0], str(tmp_path / "missing-b.png")], PROMPT)
    assert caught.value.index == 2
    with pytest.raises(ValueError, match="prepare_workers must be positive"):
        Scorer(scorer.model, prepare_workers=0)


def test_a_long_call_holds_two_chunks_of_prepared_images_not_all_of_them(checkpoint, sample_images):
    """Scoring thousands of images in one call must not keep every prepared tensor in memory."""
    scorer = Scorer.from_pretrained(checkpoint, device="cpu", batch_size=2)
    scorer.prepare_workers = 2
    images = [next(iter(sample_images.values()))] * 10
    prepared, seen_when_scoring = [], []
    prepare, score_batch = scorer._prepare, scorer._score_batch
    scorer._prepare = lambda image, index: (prepared.append(index), prepare(image, index))[1]
    scorer._score_batch = lambda tensors, text: (seen_when_scoring.append(len(prepared)), score_batch(tensors, text))[1]
    results = scorer.score(images, PROMPT)
    assert len(results) == 10 and sorted(prepared) == list(range(10))
    # when chunk k is scored, only chunks up to k + 1 have been prepared (this one and the next), never all ten images
    assert all(count <= (chunk + 2) * 2 for chunk, count in enumerate(seen_when_scoring)), seen_when_scoring


@pytest.mark.parametrize("workers", [1, 2])
def test_score_readable_skips_what_cannot_be_read_and_scores_the_rest_as_alone(checkpoint, sample_images, tmp_path, workers):
    """One truncated file among many costs only itself; progress counts scored and skipped images alike."""
    scorer = Scorer.from_pretrained(checkpoint, device="cpu", batch_size=2)
    scorer.prepare_workers = workers
    good = list(sample_images.values())[:4]
    cut = tmp_path / "cut.png"
    good[0].save(cut)
    cut.write_bytes(cut.read_bytes()[:200])
    inputs = [good[0], str(cut), good[1], str(tmp_path / "gone.png"), good[2], good[3]]
    progress: list[tuple[int, int]] = []
    scored = scorer.score_readable(inputs, PROMPT, progress=lambda done, total: progress.append((done, total)))
    assert sorted(scored.scores) == [0, 2, 4, 5] and sorted(scored.skipped) == [1, 3]
    assert "cannot be decoded" in scored.skipped[1].problem and scored.skipped[1].index == 1
    assert scored.skipped[3].index == 3 and "gone.png" in scored.skipped[3].source
    alone = scorer.score([good[0], good[1], good[2], good[3]], PROMPT)
    for index, expected in zip([0, 2, 4, 5], alone, strict=True):
        assert all(abs(scored.scores[index][dim] - expected[dim]) <= TOLERANCE for dim in scorer.dimensions)
    assert progress == [(2, 6), (4, 6), (6, 6)]  # once per chunk of two, the skipped ones counted as done
    with pytest.raises(ValueError, match=r"image 1: .*cut\.png"):
        scorer.score(inputs, PROMPT)  # score() still stops at the first
