import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from aesthetic_platform.generation import GenerationRequest, PosterRenderer, assign_ratios, size_for_ratio
from aesthetic_platform.generation.poster import design_poster
from aesthetic_platform.generation.sizes import ratio_cycle
from aesthetic_platform.prompts.grammar import grammar_prompts
from aesthetic_platform.schemas import RATIOS

PROMPT = grammar_prompts("poster-tests", 1, ("en",))[0].text


@pytest.mark.parametrize("ratio", list(RATIOS))
@pytest.mark.parametrize("budget", [256 * 256, 1024 * 1024])
def test_sizes_follow_ratio_budget_and_multiple(ratio, budget):
    width, height = size_for_ratio(ratio, budget)
    rw, rh = RATIOS[ratio]
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width / height - rw / rh) < 0.08
    assert 0.85 < width * height / budget < 1.15


def test_size_errors():
    with pytest.raises(ValueError, match="unknown aspect ratio"):
        size_for_ratio("2:1", 65536)
    with pytest.raises(ValueError, match="pixel budget"):
        size_for_ratio("1:1", 100)


def test_ratio_modes():
    import random

    cycle = ratio_cycle(list(RATIOS), 2)
    assert len(cycle) == 10 and len(set(cycle)) == 10
    for block in (cycle[:5], cycle[5:]):  # every five consecutive subsets use each ratio exactly twice
        assert Counter(r for subset in block for r in subset) == dict.fromkeys(RATIOS, 2)
    positions = [i / 20 for i in range(20)][::-1]
    balanced = assign_ratios(positions, "balanced", list(RATIOS), 2, random.Random(0))
    assert Counter(r for subset in balanced for r in subset) == dict.fromkeys(RATIOS, 8)
    drawn = assign_ratios([0.5] * 50, "random", ["3:4", "4:3"], 1, random.Random(0))
    assert {r for (r,) in drawn} == {"3:4", "4:3"}
    with pytest.raises(ValueError, match="subset"):
        assign_ratios([0.1], "balanced", ["5:4"], 1, random.Random(0))
    with pytest.raises(ValueError, match="between 1 and 2"):
        ratio_cycle(["1:1", "4:3"], 3)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("ratio", list(RATIOS))
def test_renderer_is_deterministic_and_sized_per_ratio(ratio):
    width, height = size_for_ratio(ratio, 128 * 128)
    request = GenerationRequest(PROMPT, 1234, width, height)
    first, second = PosterRenderer().generate([request]), PosterRenderer().generate([request])
    assert first[0].size == (width, height)
    assert first[0].mode == "RGB"
    assert _png(first[0]) == _png(second[0])


def test_seeds_vary_composition_colour_and_adherence():
    designs = [design_poster(PROMPT, seed) for seed in range(60)]
    positions = {(round(d.subject_x, 1), round(d.subject_y, 1)) for d in designs}
    assert len(positions) > 10
    assert any(d.subject_x < 0 or d.subject_x > 1 or d.subject_y < 0 or d.subject_y > 1 for d in designs), "some subjects are cut off"
    assert len({d.saturation for d in designs}) >= 3
    assert len({d.background for d in designs}) > 30
    assert len({d.subject_shape for d in designs}) >= 2, "the subject word is sometimes ignored"
    images = PosterRenderer().generate([GenerationRequest(PROMPT, s, 96, 96) for s in range(4)])
    arrays = [np.asarray(i, dtype=np.int16) for i in images]
    assert all(np.abs(arrays[0] - a).mean() > 3 for a in arrays[1:])


def test_prompt_changes_the_picture():
    other = grammar_prompts("poster-tests-2", 1, ("en",))[0].text
    a, b = PosterRenderer().generate([GenerationRequest(PROMPT, 7, 96, 96), GenerationRequest(other, 7, 96, 96)])
    assert _png(a) != _png(b)
