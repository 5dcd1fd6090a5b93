"""The heuristic judge: every dimension scored from pixels and the prompt text alone.

It is the embedded default teacher (demo, CI) and the brain of the local
OpenAI-compatible test server, so it must be offline, deterministic and honest: it
reads the image's pixels and the objective elements named in the prompt text
(``parse_elements``), never the generator's metadata or the manifest. Each image is
scored on its own, so the verdict cannot depend on which image is shown first.

All formulas work on the image resized to ``ANALYSIS_SIDE`` (longest side) and give a
sub-score in [0, 1]; a dimension is a weighted mean of its sub-scores and is mapped
linearly onto the judge's score scale.

Foreground / saliency
    A poster's background is a smooth gradient, so a plane ``L,a,b = c0 + c1*x + c2*y``
    is fitted per CIELAB channel by least squares, refitted on the pixels that fit it
    (robust pass). The saliency map is each pixel's colour distance (ΔE) to that plane:
    what stands out from the background. Foreground = saliency > ``FOREGROUND_DELTA_E``;
    it is dilated by ``GROUP_RADIUS`` so letters of one word form one object.

composition = mean of weighted sub-scores (``COMPOSITION_WEIGHTS``)
    placement: the main object's centroid (cx, cy) against the nearest thirds/centre
        line in each axis: ``exp(-(dx² + dy²) / (2 σ²))``, σ = ``PLACEMENT_SIGMA``.
    edges: 1 - (salient mass of objects touching the frame / all salient mass):
        subjects cut at the edges lose.
    scale: 1 when the main object covers ``SUBJECT_AREA`` of the frame, decaying with
        the log-distance outside that band (tiny or overwhelming subjects lose).
    clutter: ``exp(-max(0, objects - CLUTTER_FREE_OBJECTS) / CLUTTER_SCALE)``.
    balance: 1 - 2·|saliency centroid - frame centre| (clipped at 0).

color
    colourfulness: Hasler–Süsstrunk M = σ_rgyb + 0.3 μ_rgyb (0-255 RGB); 1 inside
        ``COLOURFULNESS_BAND``, Gaussian fall-off outside (washed-out or garish lose).
    contrast: mean saliency on the main object / ``SUBJECT_CONTRAST_FULL`` (a subject
        that melts into the background loses), averaged with RMS luminance contrast /
        ``RMS_CONTRAST_FULL``.
    harmony: chroma-weighted hue histogram of the colourful pixels; the share of it
        captured by the best rotation of a harmonic template (analogous sector,
        complementary pair, triad — ``HARMONY_TEMPLATES``); clashing accents lose.

style_fit
    finish: Immerkær's noise estimate σ_n of the luminance; ``exp(-σ_n / NOISE_SCALE)``
        (grainy, unpolished output loses).
    profile: how well global statistics match the style the prompt names
        (``STYLE_PROFILES``: e.g. cyberpunk = dark and colourful, watercolor = light and
        soft, minimal = few objects); 0.5 when the prompt names no known style.

prompt_alignment
    palette: presence of every named colour (chromatic colours by hue within
        ``HUE_TOLERANCE``, achromatic ones by lightness with low chroma; present when it
        covers ``PRESENCE_FULL`` of the frame) and the share of colourful pixels whose
        hue matches no named colour (off-palette); ``PALETTE_WEIGHTS``.
    layout: the main object's centroid against the position the layout word means
        (``LAYOUT_TARGETS``), ``exp(-d² / (2 σ²))``, σ = ``LAYOUT_SIGMA``.
    The subject's identity (sneaker or lantern) is not scored: that needs a VLM.

total = ``TOTAL_WEIGHTS`` · (composition, color, style_fit, prompt_alignment).
"""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypedDict

import cv2
import numpy as np
from PIL import Image

from aesthetic_platform.images import load_image
from aesthetic_platform.judging.base import ImageRef, JudgeRequest, OnVerdict, Verdict
from aesthetic_platform.judging.prompt import ScoreScale, check_dimensions, version_hash
from aesthetic_platform.prompts.vocabulary import COLOURS, Elements, parse_elements

HEURISTIC_VERSION = "heuristic-v1"
HEURISTIC_MODEL = "heuristic-pixels"
HEURISTIC_DIMENSIONS = ("total", "composition", "color", "style_fit", "prompt_alignment")

ANALYSIS_SIDE = 256
FOREGROUND_DELTA_E = 14.0
ROBUST_FIT_PASSES = 3
ROBUST_FIT_RGB = 30.0  # RGB distance a background pixel may have from the plane (grain, gradients)
BORDER_BAND = 0.08  # of the shorter side: where the first background fit looks
GROUP_RADIUS = 0.02  # of the shorter side
MIN_OBJECT_AREA = 0.002  # of the frame
EDGE_BAND = 2  # pixels

PLACEMENT_LINES = (1 / 3, 1 / 2, 2 / 3)
PLACEMENT_SIGMA = 0.07
SUBJECT_AREA = (0.03, 0.30)
SUBJECT_AREA_FALLOFF = 1.2  # natural-log units
CLUTTER_FREE_OBJECTS = 4
CLUTTER_SCALE = 3.0
COMPOSITION_WEIGHTS = {"placement": 0.25, "edges": 0.25, "scale": 0.2, "clutter": 0.2, "balance": 0.1}

COLOURFULNESS_BAND = (25.0, 55.0)
COLOURFULNESS_FALLOFF = 10.0
SUBJECT_CONTRAST_FULL = 45.0
RMS_CONTRAST_FULL = 0.22
CHROMA_MIN = 12.0
HUE_BINS = 72
#: harmonic templates: sector offsets (degrees) and sector width (degrees)
HARMONY_TEMPLATES: dict[str, tuple[tuple[float, ...], float]] = {
    "analogous": ((0.0,), 60.0),
    "complementary": ((0.0, 180.0), 30.0),
    "triad": ((0.0, 120.0, 240.0), 20.0),
}
COLOR_WEIGHTS = {"colourfulness": 0.4, "contrast": 0.35, "harmony": 0.25}

NOISE_SCALE = 4.0
STYLE_WEIGHTS = {"finish": 0.55, "profile": 0.45}

HUE_TOLERANCE = 28.0
PRESENCE_FULL = 0.04
PALETTE_WEIGHTS = {"presence": 0.55, "on_palette": 0.45}
LAYOUT_SIGMA = 0.12
#: where the layout word puts the main subject: candidate (x, y) targets as fractions of the frame
LAYOUT_TARGETS: dict[str, tuple[tuple[float, float], ...]] = {
    "centered": ((0.5, 0.5),),
    "thirds": ((1 / 3, 1 / 3), (2 / 3, 1 / 3), (1 / 3, 2 / 3), (2 / 3, 2 / 3)),
    "left": ((0.3, 0.5),),
    "right": ((0.7, 0.5),),
    "diagonal": ((1 / 3, 2 / 3), (2 / 3, 1 / 3), (1 / 3, 1 / 3), (2 / 3, 2 / 3)),
    "top_heavy": ((0.5, 0.65),),
}
ALIGNMENT_WEIGHTS = {"palette": 0.6, "layout": 0.4}

TOTAL_WEIGHTS = {"composition": 0.3, "color": 0.25, "style_fit": 0.15, "prompt_alignment": 0.3}
NEUTRAL = 0.5
SCORE_DECIMALS = 2


@dataclass(frozen=True)
class Saliency:
    """Foreground analysis of one image (see module docstring)."""

    delta_e: np.ndarray  # HxW saliency: ΔE to the fitted background
    objects: list[np.ndarray]  # boolean masks of grouped foreground objects, largest first
    object_touches_edge: list[bool]

    @property
    def main(self) -> np.ndarray | None:
        return self.objects[0] if self.objects else None


@dataclass(frozen=True)
class Analysis:
    rgb: np.ndarray  # float32 0-255
    lab: np.ndarray  # float32 L 0-100
    saliency: Saliency

    @property
    def height(self) -> int:
        return self.rgb.shape[0]

    @property
    def width(self) -> int:
        return self.rgb.shape[1]

    @functools.cached_property
    def hue_chroma(self) -> tuple[np.ndarray, np.ndarray]:
        """CIELAB hue (degrees) and chroma per pixel: colour, style and palette all read them."""
        return _hue_chroma(self.lab)


# --- preparation -------------------------------------------------------------------
def analyse(image: Image.Image) -> Analysis:
    """Resize to the analysis side, convert to CIELAB and find the salient objects."""
    rgb_image = image.convert("RGB")
    scale = ANALYSIS_SIDE / max(rgb_image.size)
    if scale < 1:
        size = (max(1, round(rgb_image.width * scale)), max(1, round(rgb_image.height * scale)))
        rgb_image = rgb_image.resize(size, Image.Resampling.BOX)
    rgb = np.asarray(rgb_image, dtype=np.float32)
    lab = cv2.cvtColor(rgb / 255.0, cv2.COLOR_RGB2LAB)
    return Analysis(rgb, lab, _saliency(rgb, lab))


def _background_plane(rgb: np.ndarray) -> np.ndarray:
    """Least-squares plane per RGB channel: first on the frame's border band (where a
    poster's background shows), then refitted on every pixel it explains.

    RGB, not Lab: a linear gradient between two colours is a plane in RGB only. Three
    unknowns per channel, so the normal equations (a 3x3 solve over float64 sums) replace
    a full least-squares factorisation of every pixel.
    """
    h, w, _ = rgb.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    design = np.stack([np.ones(h * w, np.float32), xs.ravel() / w, ys.ravel() / h], axis=1)
    values = rgb.reshape(-1, 3)
    band = max(1, round(BORDER_BAND * min(h, w)))
    keep: np.ndarray = np.ones((h, w), bool)  # a [h, w] mask, then flat
    keep[band:-band, band:-band] = False
    keep = keep.ravel()
    for _ in range(ROBUST_FIT_PASSES):
        coeffs = _plane_coefficients(design[keep], values[keep])
        fitted = design @ coeffs
        residual = np.linalg.norm(values - fitted, axis=1)
        explained = residual <= ROBUST_FIT_RGB
        if explained.sum() < design.shape[1]:
            break
        keep = explained
    return np.clip(fitted.reshape(h, w, 3), 0, 255)


def _plane_coefficients(design: np.ndarray, values: np.ndarray) -> np.ndarray:
    """[3, channels] least-squares coefficients; the minimum-norm solution when the pixels are degenerate."""
    design64 = design.astype(np.float64)
    gram = design64.T @ design64
    moments = design64.T @ values.astype(np.float64)
    if np.linalg.cond(gram) < 1e8:
        return np.linalg.solve(gram, moments).astype(np.float32)
    return np.linalg.lstsq(design64, values.astype(np.float64), rcond=None)[0].astype(np.float32)


def _saliency(rgb: np.ndarray, lab: np.ndarray) -> Saliency:
    smooth_rgb = cv2.GaussianBlur(rgb, (3, 3), 0)
    background = cv2.cvtColor(_background_plane(smooth_rgb).astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB)
    delta_e = np.linalg.norm(cv2.GaussianBlur(lab, (3, 3), 0) - background, axis=2)
    h, w = delta_e.shape
    mask = (delta_e > FOREGROUND_DELTA_E).astype(np.uint8)
    radius = max(1, round(GROUP_RADIUS * min(h, w)))
    grouped = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    count, labels = cv2.connectedComponents(grouped, connectivity=8)
    objects: list[tuple[float, np.ndarray, bool]] = []
    for index in range(1, count):
        member = (labels == index) & mask.astype(bool)
        area = float(member.sum())
        if area < MIN_OBJECT_AREA * h * w:
            continue
        rows = np.flatnonzero(member.any(axis=1))
        cols = np.flatnonzero(member.any(axis=0))
        touches = rows[0] < EDGE_BAND or cols[0] < EDGE_BAND or rows[-1] >= h - EDGE_BAND or cols[-1] >= w - EDGE_BAND
        objects.append((area, member, bool(touches)))
    objects.sort(key=lambda item: item[0], reverse=True)  # the main subject is the largest object
    return Saliency(delta_e, [o[1] for o in objects], [o[2] for o in objects])


def _centroid(mask: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    wts = np.ones(len(xs)) if weights is None else weights[ys, xs]
    total = float(wts.sum()) or 1.0
    return float((xs * wts).sum() / total + 0.5) / w, float((ys * wts).sum() / total + 0.5) / h


def _gauss(distance_sq: float, sigma: float) -> float:
    return math.exp(-distance_sq / (2 * sigma * sigma))


def _band(value: float, low: float, high: float, falloff: float) -> float:
    """1 inside [low, high], Gaussian decay with ``falloff`` outside."""
    gap = low - value if value < low else value - high if value > high else 0.0
    return math.exp(-0.5 * (gap / falloff) ** 2)


def _weighted(parts: dict[str, float], weights: dict[str, float]) -> float:
    return sum(parts[k] * w for k, w in weights.items()) / sum(weights.values())


# --- composition -------------------------------------------------------------------
def composition_parts(a: Analysis) -> dict[str, float]:
    sal = a.saliency
    if sal.main is None:  # nothing stands out: no subject, nothing to compose
        return {"placement": 0.0, "edges": 1.0, "scale": 0.0, "clutter": 1.0, "balance": NEUTRAL}
    cx, cy = _centroid(sal.main)
    dx = min(abs(cx - line) for line in PLACEMENT_LINES)
    dy = min(abs(cy - line) for line in PLACEMENT_LINES)
    masses = [float(sal.delta_e[m].sum()) for m in sal.objects]
    cut = sum(m for m, touches in zip(masses, sal.object_touches_edge, strict=True) if touches)
    area = float(sal.main.mean())
    log_gap = max(0.0, math.log(SUBJECT_AREA[0] / area), math.log(area / SUBJECT_AREA[1]))
    every = np.logical_or.reduce(sal.objects)
    bx, by = _centroid(every, sal.delta_e)
    return {
        "placement": _gauss(dx * dx + dy * dy, PLACEMENT_SIGMA),
        "edges": 1.0 - cut / sum(masses),
        "scale": math.exp(-0.5 * (log_gap / SUBJECT_AREA_FALLOFF) ** 2),
        "clutter": math.exp(-max(0, len(sal.objects) - CLUTTER_FREE_OBJECTS) / CLUTTER_SCALE),
        "balance": max(0.0, 1.0 - 2.0 * math.hypot(bx - 0.5, by - 0.5)),
    }


# --- colour --------------------------------------------------------------------------
def colourfulness(rgb: np.ndarray) -> float:
    """Hasler & Süsstrunk (2003) colourfulness M on 0-255 RGB."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    rg = r - g
    yb = 0.5 * (r + g) - b
    return float(math.hypot(rg.std(), yb.std()) + 0.3 * math.hypot(rg.mean(), yb.mean()))


def _hue_chroma(lab: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = lab[..., 1], lab[..., 2]
    return np.degrees(np.arctan2(b, a)) % 360.0, np.hypot(a, b)


@functools.cache
def _template_sectors() -> np.ndarray:
    """[templates x rotations, HUE_BINS]: which hue bins each rotation of each harmonic template covers."""
    bin_width = 360.0 / HUE_BINS
    centres = (np.arange(HUE_BINS) + 0.5) * bin_width
    rows = []
    for offsets, width in HARMONY_TEMPLATES.values():
        for rotation in np.arange(0, 360, bin_width):
            inside = np.zeros(HUE_BINS, bool)
            for offset in offsets:
                distance = np.abs((centres - rotation - offset + 180) % 360 - 180)
                inside |= distance <= width / 2
            rows.append(inside)
    return np.stack(rows).astype(np.float64)


def harmony(hue_chroma: tuple[np.ndarray, np.ndarray], delta_e: np.ndarray) -> float:
    """Share of the hue histogram captured by the best rotation of a harmonic template.

    Pixels weigh by chroma times (1 + saliency / ``FOREGROUND_DELTA_E``), so a small
    clashing accent counts for more than its area while the background still counts.
    """
    hue, chroma = hue_chroma
    colourful = chroma > CHROMA_MIN
    if not colourful.any():
        return 1.0  # greyscale cannot clash
    weights = chroma[colourful] * (1.0 + delta_e[colourful] / FOREGROUND_DELTA_E)
    histogram, _ = np.histogram(hue[colourful], bins=HUE_BINS, range=(0, 360), weights=weights)
    histogram = histogram / histogram.sum()
    return float((_template_sectors() @ histogram).max())


def color_parts(a: Analysis) -> dict[str, float]:
    sal = a.saliency
    subject_contrast = float(sal.delta_e[sal.main].mean()) if sal.main is not None else 0.0
    rms = float(a.lab[..., 0].std() / 100.0)
    contrast = 0.5 * min(1.0, subject_contrast / SUBJECT_CONTRAST_FULL) + 0.5 * min(1.0, rms / RMS_CONTRAST_FULL)
    return {
        "colourfulness": _band(colourfulness(a.rgb), *COLOURFULNESS_BAND, COLOURFULNESS_FALLOFF),
        "contrast": contrast,
        "harmony": harmony(a.hue_chroma, sal.delta_e),
    }


# --- style -----------------------------------------------------------------------------
def noise_sigma(gray: np.ndarray) -> float:
    """Immerkær (1996) fast noise variance estimation, on 0-255 luminance."""
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    response = cv2.filter2D(gray.astype(np.float32), -1, kernel)[1:-1, 1:-1]
    h, w = gray.shape
    return float(math.sqrt(math.pi / 2) * np.abs(response).sum() / (6.0 * max(1, (w - 2) * (h - 2))))


def _sharpness(gray: np.ndarray) -> float:
    """Share of strong luminance edges among all gradients: crisp flat shapes score high."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    magnitude = np.hypot(gx, gy)
    return float((magnitude > 60).mean() / max((magnitude > 15).mean(), 1e-6))


def _stats(a: Analysis) -> dict[str, float]:
    hue, chroma = a.hue_chroma
    warm = ((hue < 75) | (hue > 345)) & (chroma > CHROMA_MIN * 2)
    return {
        "lightness": float(a.lab[..., 0].mean() / 100.0),
        "chroma": float(min(1.0, chroma.mean() / 50.0)),
        "tonal_range": float((np.percentile(a.lab[..., 0], 95) - np.percentile(a.lab[..., 0], 5)) / 100.0),
        "objects": float(len(a.saliency.objects)),
        "warm": float(warm.mean()),
        "sharpness": _sharpness(a.lab[..., 0] * 2.55),
    }


def _up(value: float, full: float) -> float:
    return min(1.0, max(0.0, value / full))


def _down(value: float, zero: float) -> float:
    return min(1.0, max(0.0, 1.0 - value / zero))


#: style -> score of the global statistics in [0, 1] (see ``_stats``)
STYLE_PROFILES = {
    "cyberpunk": lambda s: 0.5 * _down(s["lightness"], 0.7) + 0.5 * _up(s["chroma"], 0.6),
    "watercolor": lambda s: 0.5 * _up(s["lightness"], 0.75) + 0.5 * _down(s["sharpness"], 0.6),
    "minimal": lambda s: 0.5 * _down(s["objects"] - 1, 6) + 0.5 * _down(s["chroma"], 0.8),
    "flat": lambda s: 0.5 * _up(s["sharpness"], 0.4) + 0.5 * _down(s["objects"] - 2, 8),
    "guochao": lambda s: 0.5 * _up(s["warm"], 0.25) + 0.5 * _up(s["chroma"], 0.5),
    "3d": lambda s: 0.5 * _up(s["tonal_range"], 0.6) + 0.5 * _down(s["objects"] - 2, 8),
    "photo": lambda s: 0.5 * _up(s["tonal_range"], 0.7) + 0.5 * _down(s["sharpness"], 0.8),
}


def luminance_noise(a: Analysis) -> float:
    """Immerkær's sigma of the lightness on a 0-255 scale (L* x 2.55): what ``finish`` scores."""
    return noise_sigma(a.lab[..., 0] * 2.55)


def style_parts(a: Analysis, elements: Elements) -> dict[str, float]:
    profile = STYLE_PROFILES.get(elements.style)
    return {
        "finish": math.exp(-luminance_noise(a) / NOISE_SCALE),
        "profile": profile(_stats(a)) if profile else NEUTRAL,
    }


# --- prompt alignment ----------------------------------------------------------------
def _colour_lab(name: str) -> np.ndarray:
    rgb = np.array([[COLOURS[name][0]]], np.float32) / 255.0
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)[0, 0]


def palette_parts(a: Analysis, palette: Sequence[str]) -> dict[str, float]:
    hue, chroma = a.hue_chroma
    lightness = a.lab[..., 0]
    colourful = chroma > CHROMA_MIN
    presence: list[float] = []
    matched = np.zeros(hue.shape, bool)
    for name in palette:
        target = _colour_lab(name)
        target_hue = math.degrees(math.atan2(target[2], target[1])) % 360.0
        if math.hypot(target[1], target[2]) > CHROMA_MIN:
            near = colourful & (np.abs((hue - target_hue + 180) % 360 - 180) <= HUE_TOLERANCE)
            matched |= near
        else:
            near = ~colourful & (np.abs(lightness - target[0]) <= 20.0)
        presence.append(min(1.0, float(near.mean()) / PRESENCE_FULL))
    weights = chroma[colourful]
    off = float(weights[~matched[colourful]].sum() / weights.sum()) if weights.size and weights.sum() > 0 else 0.0
    chromatic_named = any(math.hypot(*_colour_lab(n)[1:]) > CHROMA_MIN for n in palette)
    return {"presence": float(np.mean(presence)), "on_palette": 1.0 - off if chromatic_named else NEUTRAL}


def layout_score(a: Analysis, layout: str) -> float:
    main = a.saliency.main
    if main is None:
        return 0.0
    cx, cy = _centroid(main)
    return max(_gauss((cx - tx) ** 2 + (cy - ty) ** 2, LAYOUT_SIGMA) for tx, ty in LAYOUT_TARGETS[layout])


def alignment_parts(a: Analysis, elements: Elements) -> dict[str, float]:
    parts: dict[str, float] = {}
    if elements.palette:
        parts["palette"] = _weighted(palette_parts(a, elements.palette), PALETTE_WEIGHTS)
    if elements.layout in LAYOUT_TARGETS:
        parts["layout"] = layout_score(a, elements.layout)
    return parts


# --- the judge's scores ----------------------------------------------------------------
def image_file_scores(path: str, prompt: str) -> dict[str, float]:
    """Unit scores of an image file (the heuristic baseline on human picks)."""
    return unit_scores(load_image(path), prompt)


def unit_scores(image: Image.Image, prompt: str) -> dict[str, float]:
    """All five dimensions in [0, 1] for one image and its generation prompt."""
    analysis = analyse(image)
    elements = parse_elements(prompt)
    alignment = alignment_parts(analysis, elements)
    scores = {
        "composition": _weighted(composition_parts(analysis), COMPOSITION_WEIGHTS),
        "color": _weighted(color_parts(analysis), COLOR_WEIGHTS),
        "style_fit": _weighted(style_parts(analysis, elements), STYLE_WEIGHTS),
        "prompt_alignment": _weighted(alignment, {k: ALIGNMENT_WEIGHTS[k] for k in alignment}) if alignment else NEUTRAL,
    }
    scores["total"] = _weighted(scores, TOTAL_WEIGHTS)
    return scores


def scaled_scores(image: Image.Image, prompt: str, dimensions: Sequence[str], scale: ScoreScale) -> dict[str, float]:
    """The requested dimensions mapped onto the score scale, rounded to ``SCORE_DECIMALS``."""
    unit = unit_scores(image, prompt)
    return {d: round(scale.low + (scale.high - scale.low) * unit[d], SCORE_DECIMALS) for d in dimensions}


def pair_reason(scores_a: dict[str, float], scores_b: dict[str, float], winner: str) -> str:
    """Name the dimensions where the winner is furthest ahead (and any the loser wins)."""
    sign = 1.0 if winner == "A" else -1.0
    gaps = sorted(((sign * (scores_a[d] - scores_b[d]), d) for d in scores_a if d != "total"), reverse=True)
    ahead = [f"{d} (+{gap:.1f})" for gap, d in gaps if gap > 0][:2]
    behind = [d for gap, d in gaps if gap < 0]
    text = f"{winner} is ahead on " + (", ".join(ahead) if ahead else "total only")
    return text + (f"; the other image has the better {', '.join(behind)}" if behind else "") + "."


class HeuristicReply(TypedDict):
    """The judge reply's JSON shape."""

    scores: dict[str, dict[str, float]]
    winner: Literal["A", "B"]
    reason: str


def heuristic_reply(scores_a: dict[str, float], scores_b: dict[str, float]) -> HeuristicReply:
    """The verdict in the judge reply's JSON shape: the higher total wins (A on a tie)."""
    winner: Literal["A", "B"] = "A" if scores_a["total"] >= scores_b["total"] else "B"
    return {"scores": {"A": scores_a, "B": scores_b}, "winner": winner, "reason": pair_reason(scores_a, scores_b, winner)}


class HeuristicJudge:
    """The embedded-default ``Judge``: offline, deterministic, position-invariant."""

    def __init__(self, dimensions: Sequence[str] = HEURISTIC_DIMENSIONS, scale: ScoreScale | None = None) -> None:
        self._dimensions = check_dimensions(tuple(dimensions))
        unknown = sorted(set(self._dimensions) - set(HEURISTIC_DIMENSIONS))
        if unknown:
            raise ValueError(
                f"the heuristic judge cannot score dimension(s) {unknown}; it knows {list(HEURISTIC_DIMENSIONS)}. "
                "Use the openai judge for custom dimensions."
            )
        self.scale = scale or ScoreScale()
        self._memo: dict[tuple[str, str], dict[str, float]] = {}

    @property
    def model(self) -> str:
        return HEURISTIC_MODEL

    @property
    def fingerprint(self) -> str:
        return "pixels"  # no endpoint, no sampling: the prompt version already names dimensions and scale

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self._dimensions

    @property
    def prompt_version(self) -> str:
        return f"{HEURISTIC_VERSION}.{version_hash(self._dimensions, self.scale)}"

    def _scores(self, image: ImageRef, prompt: str) -> dict[str, float]:
        key = (image.sha256, prompt)
        if key not in self._memo:
            self._memo[key] = scaled_scores(load_image(image.path), prompt, self._dimensions, self.scale)
        return self._memo[key]

    def judge_all(self, requests: Sequence[JudgeRequest], on_verdict: OnVerdict) -> None:
        for index, request in enumerate(requests):
            started = time.perf_counter()
            try:
                scores_a = self._scores(request.first, request.prompt)
                scores_b = self._scores(request.second, request.prompt)
            except OSError as exc:  # missing or unreadable image file
                on_verdict(index, Verdict.failed(f"cannot read image: {exc}", "transport", attempts=1))
                continue
            reply = heuristic_reply(scores_a, scores_b)
            on_verdict(index, Verdict(
                ok=True, scores_a=scores_a, scores_b=scores_b, winner=reply["winner"], reason=reply["reason"],
                raw=json.dumps(reply, ensure_ascii=False), attempts=1, latency_ms=(time.perf_counter() - started) * 1000,
            ))
