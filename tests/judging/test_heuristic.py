"""The heuristic judge sees real defects in pixels, dimension by dimension, and nothing else."""

import shutil

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance

from aesthetic_platform.atomic import sha256_file
from aesthetic_platform.judging import HeuristicJudge, ImageRef, JudgeRequest
from aesthetic_platform.judging.heuristic import unit_scores

PROMPT = "A minimalist design poster featuring a paper lantern, navy and gold palette, centered composition"
NAVY, GOLD, CREAM = (20, 34, 90), (222, 178, 60), (245, 240, 225)


def poster(centre=(0.5, 0.5), radius=0.2, subject=GOLD, background=CREAM, size=(192, 192), clutter=0, grain=0.0):
    w, h = size
    image = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(image)
    draw.rectangle((w * 0.3, h * 0.08, w * 0.7, h * 0.13), fill=NAVY)  # a navy headline bar
    rng = np.random.default_rng(0)
    for _ in range(clutter):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(4, 12)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    cx, cy, r = centre[0] * w, centre[1] * h, radius * min(w, h)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=subject)
    if grain:
        noise = np.random.default_rng(1).normal(0, grain, (h, w, 1))
        image = Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8))
    return image


def test_scores_are_deterministic_and_in_range():
    first, second = unit_scores(poster(), PROMPT), unit_scores(poster(), PROMPT)
    assert first == second
    assert set(first) == {"total", "composition", "color", "style_fit", "prompt_alignment"}
    assert all(0.0 <= v <= 1.0 for v in first.values())


def test_dimensions_are_distinct_functions_of_the_pixels():
    images = [poster(), poster(centre=(0.97, 0.5)), poster(clutter=12), poster(grain=12), poster(subject=(40, 160, 90))]
    rows = np.array([[unit_scores(im, PROMPT)[d] for d in ("composition", "color", "style_fit", "prompt_alignment")] for im in images])
    assert len({tuple(np.round(r, 3)) for r in rows.T}) == 4  # no two dimensions move in lockstep


def test_subject_cut_at_the_edge_loses_composition():
    good, cut = unit_scores(poster(), PROMPT), unit_scores(poster(centre=(0.98, 0.5)), PROMPT)
    assert good["composition"] > cut["composition"] + 0.15


def test_clutter_loses_composition():
    assert unit_scores(poster(), PROMPT)["composition"] > unit_scores(poster(clutter=14), PROMPT)["composition"]


def test_washed_out_colour_and_a_melting_subject_lose_color():
    good = unit_scores(poster(), PROMPT)["color"]
    washed = unit_scores(ImageEnhance.Color(poster()).enhance(0.15), PROMPT)["color"]
    melting = unit_scores(poster(subject=(236, 226, 200)), PROMPT)["color"]
    assert good > washed + 0.1
    assert good > melting + 0.05


def test_grain_loses_style_fit():
    assert unit_scores(poster(), PROMPT)["style_fit"] > unit_scores(poster(grain=14), PROMPT)["style_fit"] + 0.1


def test_off_palette_and_off_layout_lose_prompt_alignment():
    good = unit_scores(poster(), PROMPT)["prompt_alignment"]
    off_palette = unit_scores(poster(subject=(40, 160, 90)), PROMPT)["prompt_alignment"]
    off_layout = unit_scores(poster(centre=(0.2, 0.25)), PROMPT)["prompt_alignment"]
    assert good > off_palette + 0.1
    assert good > off_layout + 0.1
    # the same pixels judged against a prompt that asks for other colours
    assert good > unit_scores(poster(), PROMPT.replace("navy and gold", "pink and teal"))["prompt_alignment"] + 0.1


def test_judge_reads_only_pixels_and_prompt(tmp_path):
    """Same pixels under another file name (no manifest, no generator) give the same verdict."""
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    poster().save(a)
    poster(centre=(0.97, 0.5)).save(b)
    renamed = tmp_path / "renamed-elsewhere.png"
    shutil.copyfile(a, renamed)
    verdicts = []
    for first in (a, renamed):
        request = JudgeRequest(PROMPT, ImageRef(str(first), sha256_file(first)), ImageRef(str(b), sha256_file(b)))
        HeuristicJudge().judge_all([request], lambda i, v: verdicts.append(v))
    assert verdicts[0].scores_a == verdicts[1].scores_a and verdicts[0].winner == verdicts[1].winner == "A"
    assert "composition" in verdicts[0].reason


def test_position_invariant_and_custom_dimensions_refused(tmp_path):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    poster().save(a)
    poster(clutter=10).save(b)
    ra, rb = ImageRef(str(a), sha256_file(a)), ImageRef(str(b), sha256_file(b))
    verdicts = {}
    HeuristicJudge().judge_all([JudgeRequest(PROMPT, ra, rb), JudgeRequest(PROMPT, rb, ra)], lambda i, v: verdicts.__setitem__(i, v))
    assert verdicts[0].scores_a == verdicts[1].scores_b and verdicts[0].winner != verdicts[1].winner
    with pytest.raises(ValueError, match="cannot score dimension"):
        HeuristicJudge(("total", "mood"))


def test_missing_image_is_a_failed_verdict_not_a_score(tmp_path):
    a = tmp_path / "a.png"
    poster().save(a)
    ref = ImageRef(str(a), sha256_file(a))
    got = []
    HeuristicJudge().judge_all([JudgeRequest(PROMPT, ref, ImageRef(str(tmp_path / "gone.png"), "0" * 64))], lambda i, v: got.append(v))
    assert not got[0].ok and got[0].scores_a is None and "cannot read image" in got[0].error


def test_background_plane_solve_matches_least_squares_and_survives_a_degenerate_fit():
    from aesthetic_platform.judging.heuristic import _plane_coefficients

    rng = np.random.default_rng(3)
    design = np.stack([np.ones(500), rng.uniform(0, 1, 500), rng.uniform(0, 1, 500)], axis=1).astype(np.float32)
    values = (design @ rng.uniform(0, 255, (3, 3)) + rng.normal(0, 4, (500, 3))).astype(np.float32)
    expected = np.linalg.lstsq(design.astype(np.float64), values.astype(np.float64), rcond=None)[0]
    np.testing.assert_allclose(_plane_coefficients(design, values), expected, rtol=1e-4, atol=1e-3)
    one_column = design.copy()
    one_column[:, 1] = 0.25  # every kept pixel in one column: x says nothing, the plane is not unique
    fitted = one_column @ _plane_coefficients(one_column, values)
    assert np.isfinite(fitted).all()
    np.testing.assert_allclose(fitted.mean(axis=0), values.mean(axis=0), atol=1e-2)


def test_harmony_is_the_best_rotation_of_any_template():
    """The template table answers what a loop over every rotation of every template answers."""
    from aesthetic_platform.judging.heuristic import HARMONY_TEMPLATES, HUE_BINS, _template_sectors

    rng = np.random.default_rng(4)
    histogram = rng.dirichlet(np.ones(HUE_BINS) * 0.3)
    width = 360.0 / HUE_BINS
    centres = (np.arange(HUE_BINS) + 0.5) * width
    best = 0.0
    for offsets, sector in HARMONY_TEMPLATES.values():
        for rotation in np.arange(0, 360, width):
            inside = np.zeros(HUE_BINS, bool)
            for offset in offsets:
                inside |= np.abs((centres - rotation - offset + 180) % 360 - 180) <= sector / 2
            best = max(best, float(histogram[inside].sum()))
    assert float((_template_sectors() @ histogram).max()) == pytest.approx(best, abs=1e-12)
