"""PosterRenderer: the embedded-default generator, a deterministic procedural poster.

Each (prompt, seed) pair fixes a *design*; the design is then drawn at any size. The
seed drives real variation in the things an aesthetic judge looks at:

* composition: where the subject sits (the prompt's layout followed or not, thirds
  points, corners), how big it is, whether it is cut off at an edge, text margins,
  and clutter from decorations;
* colour: the prompt's palette followed or ignored, a clashing accent, low contrast
  between subject and background, washed-out or over-saturated output;
* prompt adherence: palette, subject and layout words followed or ignored.

No metadata about these choices leaves the renderer: a judge must see them in pixels.
Same prompt, seed and size give identical PNG bytes.
"""

from __future__ import annotations

import colorsys
import hashlib
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

from aesthetic_platform.generation.base import GenerationRequest
from aesthetic_platform.prompts.vocabulary import COLOURS, PALETTES, SUBJECTS, parse_elements

RENDERER_NAME = "poster-renderer/v1"
SUPERSAMPLE = 2
RGB = tuple[int, int, int]

#: where the subject sits for each layout word: (x, y) as fractions of width/height
LAYOUT_ANCHORS: dict[str, tuple[float, float]] = {
    "centered": (0.5, 0.55),
    "thirds": (1 / 3, 2 / 3),
    "left": (0.3, 0.55),
    "right": (0.7, 0.55),
    "diagonal": (0.35, 0.65),
    "top_heavy": (0.5, 0.66),
}
_QUOTED = re.compile(r"[\"“”「」『』](.+?)[\"“”「」『』]")


@dataclass(frozen=True)
class Decoration:
    shape: str
    x: float
    y: float
    size: float
    colour: RGB


@dataclass(frozen=True)
class PosterDesign:
    """Everything that decides the pixels except the size."""

    background: tuple[RGB, RGB]
    gradient_angle: float
    subject_shape: str
    subject_colour: RGB
    subject_x: float
    subject_y: float
    subject_scale: float
    text: str
    text_colour: RGB
    text_x: float
    text_y: float
    text_margin: float
    decorations: tuple[Decoration, ...]
    saturation: float
    grain: float
    grain_seed: int


def _rng(prompt: str, seed: int) -> np.random.Generator:
    prompt_key = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    return np.random.default_rng([seed, prompt_key])


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]


def _random_colour(rng: np.random.Generator) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(0.4, 1.0)), float(rng.uniform(0.3, 1.0)))
    return int(r * 255), int(g * 255), int(b * 255)


def _luminance(c: RGB) -> float:
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]


@dataclass(frozen=True)
class DesignOdds:
    """How often the renderer breaks each rule of a good poster: the variety a judge has to see.

    Every probability and range of ``design_poster`` lives here, named; the defaults are the
    embedded renderer's (changing one changes every image, and so every cached verdict)."""

    follows_palette: float = 0.7
    dark_background: float = 0.5
    background_mix: tuple[float, float] = (0.45, 0.8)
    second_background_mix: tuple[float, float] = (0.5, 0.85)
    min_subject_contrast: float = 60.0
    low_contrast: float = 0.3
    low_contrast_mix: tuple[float, float] = (0.6, 0.85)
    follows_subject: float = 0.8
    follows_layout: float = 0.65
    thirds_left: float = 0.5
    thirds_top: float = 0.3
    placement_jitter: float = 0.02
    free_placement: tuple[float, float] = (0.08, 0.92)
    cut_off: float = 0.2
    cut_off_horizontal: float = 0.5
    usual_scale: float = 0.8
    scale_range: tuple[float, float] = (0.22, 0.55)
    extreme_scales: tuple[float, ...] = (0.1, 0.85)
    text_margins: tuple[float, ...] = (0.01, 0.05, 0.07, 0.08)
    faded_text: float = 0.2
    clashing_accents: float = 0.3
    few_decorations: float = 0.75
    few_decorations_range: tuple[int, int] = (0, 4)
    clutter_range: tuple[int, int] = (6, 14)
    decoration_size: tuple[float, float] = (0.03, 0.18)
    saturations: tuple[float, ...] = (0.35, 1.0, 1.0, 1.0, 1.7)
    grain: tuple[float, float] = (0.0, 6.0)


ODDS = DesignOdds()
DARK, LIGHT = (12, 12, 18), (250, 248, 242)


def _choose_palette(rng: np.random.Generator, named: list[RGB], odds: DesignOdds) -> list[RGB]:
    follows = rng.random() < odds.follows_palette
    palette = named if follows else [_random_colour(rng) for _ in range(max(2, len(named)))]
    order = rng.permutation(len(palette))
    return [palette[i] for i in order]


def _choose_background(rng: np.random.Generator, palette: list[RGB], odds: DesignOdds) -> tuple[bool, RGB, RGB]:
    dark = rng.random() < odds.dark_background
    tone = DARK if dark else LIGHT
    bg_a = _mix(palette[0], tone, float(rng.uniform(*odds.background_mix)))
    bg_b = _mix(palette[1 % len(palette)], tone, float(rng.uniform(*odds.second_background_mix)))
    return dark, bg_a, bg_b


def _choose_subject_colour(rng: np.random.Generator, palette: list[RGB], dark: bool, background: RGB, odds: DesignOdds) -> RGB:
    colour = palette[-1] if len(palette) > 2 else palette[1 % len(palette)]
    if abs(_luminance(colour) - _luminance(background)) < odds.min_subject_contrast:
        colour = _mix(colour, (255, 255, 255) if dark else (0, 0, 0), 0.45)
    if rng.random() < odds.low_contrast:  # the subject melts into the background
        colour = _mix(colour, background, float(rng.uniform(*odds.low_contrast_mix)))
    return colour


def _place_subject(rng: np.random.Generator, layout: str | None, odds: DesignOdds) -> tuple[float, float, float]:
    """(x, y, scale): on the prompt's layout anchor, anywhere, or cut off at an edge."""
    if rng.random() < odds.follows_layout:
        layout = layout or "centered"
        x, y = LAYOUT_ANCHORS[layout]
        if layout == "thirds":
            x = 1 / 3 if rng.random() < odds.thirds_left else 2 / 3
            y = 1 / 3 if rng.random() < odds.thirds_top else 2 / 3
        x += float(rng.normal(0, odds.placement_jitter))
        y += float(rng.normal(0, odds.placement_jitter))
    else:
        x, y = float(rng.uniform(*odds.free_placement)), float(rng.uniform(*odds.free_placement))
    if rng.random() < odds.cut_off:
        if rng.random() < odds.cut_off_horizontal:
            x = float(rng.choice([-0.02, 1.02]))
        else:
            y = float(rng.choice([-0.02, 1.02]))
    usual = rng.random() < odds.usual_scale
    scale = float(rng.uniform(*odds.scale_range)) if usual else float(rng.choice(odds.extreme_scales))
    return x, y, scale


def _place_text(rng: np.random.Generator, x: float, y: float, odds: DesignOdds) -> tuple[float, float, float]:
    """(x, y, margin) of the slogan: opposite the subject, with a sometimes cramped margin."""
    text_x = 1.0 - x if 0.2 < x < 0.8 and abs(x - 0.5) > 0.1 else float(rng.uniform(0.2, 0.8))
    text_y = 0.16 if y > 0.45 else 0.84
    return min(max(text_x, 0.0), 1.0), text_y, float(rng.choice(odds.text_margins))


def _decorations(rng: np.random.Generator, palette: list[RGB], odds: DesignOdds) -> list[Decoration]:
    clashing = rng.random() < odds.clashing_accents
    count = rng.integers(*odds.few_decorations_range) if rng.random() < odds.few_decorations else rng.integers(*odds.clutter_range)
    decorations = []
    for _ in range(int(count)):
        colour = _random_colour(rng) if clashing else palette[int(rng.integers(0, len(palette)))]
        decorations.append(
            Decoration(
                shape=str(rng.choice(["circle", "ring", "bar", "dot"])),
                x=float(rng.uniform(0, 1)), y=float(rng.uniform(0, 1)),
                size=float(rng.uniform(*odds.decoration_size)), colour=colour,
            )
        )
    return decorations


def design_poster(prompt: str, seed: int, odds: DesignOdds = ODDS) -> PosterDesign:
    """Seed-driven design decisions for a prompt (see module docstring)."""
    rng = _rng(prompt, seed)
    elements = parse_elements(prompt)
    named = [COLOURS[c][0] for c in elements.palette] or [COLOURS[c][0] for c in PALETTES[seed % len(PALETTES)][0]]
    palette = _choose_palette(rng, named, odds)
    dark, bg_a, bg_b = _choose_background(rng, palette, odds)
    subject_colour = _choose_subject_colour(rng, palette, dark, bg_a, odds)
    follows_subject = rng.random() < odds.follows_subject
    subject = elements.subject if (elements.subject and follows_subject) else str(rng.choice(sorted(SUBJECTS)))
    x, y, scale = _place_subject(rng, elements.layout, odds)
    quoted = _QUOTED.search(prompt)
    text_x, text_y, text_margin = _place_text(rng, x, y, odds)
    text_colour = (245, 245, 245) if dark else (24, 24, 28)
    if rng.random() < odds.faded_text:
        text_colour = _mix(text_colour, bg_a, 0.7)
    decorations = _decorations(rng, palette, odds)
    saturation = float(rng.choice(odds.saturations))
    return PosterDesign(
        background=(bg_a, bg_b), gradient_angle=float(rng.uniform(0, np.pi)), subject_shape=SUBJECTS[subject][2],
        subject_colour=subject_colour, subject_x=x, subject_y=y, subject_scale=scale, text=quoted.group(1) if quoted else "",
        text_colour=text_colour, text_x=text_x, text_y=text_y, text_margin=text_margin,
        decorations=tuple(decorations), saturation=saturation, grain=float(rng.uniform(*odds.grain)),
        grain_seed=int(rng.integers(0, 2**31)),
    )


def _gradient(design: PosterDesign, width: int, height: int) -> Image.Image:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    direction = np.cos(design.gradient_angle) * xs / max(width, 1) + np.sin(design.gradient_angle) * ys / max(height, 1)
    t = (direction - direction.min()) / max(float(direction.max() - direction.min()), 1e-6)
    a = np.array(design.background[0], np.float32)
    b = np.array(design.background[1], np.float32)
    pixels = a[None, None, :] * (1 - t[..., None]) + b[None, None, :] * t[..., None]
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def _draw_subject(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, colour: RGB) -> None:
    highlight = _mix(colour, (255, 255, 255), 0.35)
    shade = _mix(colour, (0, 0, 0), 0.3)
    if shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=shade, width=max(1, int(r * 0.06)))
    elif shape == "ellipse":
        draw.ellipse((cx - r * 1.3, cy - r * 0.6, cx + r * 1.3, cy + r * 0.6), fill=colour)
        draw.rectangle((cx - r * 1.3, cy + r * 0.2, cx + r * 1.3, cy + r * 0.45), fill=shade)
    elif shape == "bottle":
        draw.rounded_rectangle((cx - r * 0.6, cy - r * 0.5, cx + r * 0.6, cy + r), radius=r * 0.2, fill=colour)
        draw.rectangle((cx - r * 0.2, cy - r, cx + r * 0.2, cy - r * 0.5), fill=shade)
    elif shape == "rounded_rect":
        draw.rounded_rectangle((cx - r * 0.55, cy - r, cx + r * 0.55, cy + r), radius=r * 0.15, fill=shade)
        draw.rounded_rectangle((cx - r * 0.47, cy - r * 0.9, cx + r * 0.47, cy + r * 0.9), radius=r * 0.1, fill=colour)
    elif shape == "cup":
        draw.ellipse((cx + r * 0.45, cy - r * 0.4, cx + r * 1.0, cy + r * 0.3), outline=colour, width=max(1, int(r * 0.15)))
        draw.rounded_rectangle((cx - r * 0.7, cy - r * 0.6, cx + r * 0.6, cy + r * 0.8), radius=r * 0.2, fill=colour)
    elif shape == "capsule":
        draw.rounded_rectangle((cx - r * 1.5, cy - r * 0.45, cx + r * 1.5, cy + r * 0.45), radius=r * 0.45, fill=colour)
        for wx in (-0.9, 0.9):
            draw.ellipse((cx + r * wx - r * 0.3, cy + r * 0.2, cx + r * wx + r * 0.3, cy + r * 0.8), fill=shade)
    elif shape == "arc":
        draw.arc((cx - r, cy - r, cx + r, cy + r), start=180, end=360, fill=colour, width=max(2, int(r * 0.2)))
        for side in (-1, 1):
            draw.rounded_rectangle(
                (cx + side * r - r * 0.25, cy - r * 0.1, cx + side * r + r * 0.25, cy + r * 0.6), radius=r * 0.1, fill=colour
            )
    elif shape == "triangle":
        draw.polygon([(cx, cy - r), (cx - r * 1.2, cy + r * 0.8), (cx + r * 1.2, cy + r * 0.8)], fill=colour)
        draw.polygon([(cx, cy - r), (cx - r * 0.3, cy - r * 0.5), (cx + r * 0.3, cy - r * 0.5)], fill=highlight)
    else:
        raise ValueError(f"unknown subject shape {shape!r}")
    draw.ellipse((cx - r * 0.35, cy - r * 0.55, cx - r * 0.05, cy - r * 0.3), fill=highlight)


def _draw_decoration(draw: ImageDraw.ImageDraw, d: Decoration, width: int, height: int) -> None:
    cx, cy, r = d.x * width, d.y * height, d.size * min(width, height)
    if d.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=d.colour)
    elif d.shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=d.colour, width=max(1, int(r * 0.15)))
    elif d.shape == "bar":
        draw.rectangle((cx - r * 1.5, cy - r * 0.12, cx + r * 1.5, cy + r * 0.12), fill=d.colour)
    else:
        draw.ellipse((cx - r * 0.2, cy - r * 0.2, cx + r * 0.2, cy + r * 0.2), fill=d.colour)


def _draw_text(draw: ImageDraw.ImageDraw, design: PosterDesign, width: int, height: int) -> None:
    if not design.text:
        return
    size = max(8, int(min(width, height) * 0.085))
    margin = design.text_margin * min(width, height)
    if design.text.isascii():
        font = ImageFont.load_default(size=size)
        left, top, right, bottom = draw.textbbox((0, 0), design.text, font=font)
        text_w, text_h = right - left, bottom - top
    else:  # no CJK font ships offline: draw the headline as one glyph-sized block per character
        font = None
        text_w, text_h = int(len(design.text) * size * 1.05), size
    x = min(max(design.text_x * width - text_w / 2, margin), width - margin - text_w)
    y = min(max(design.text_y * height - text_h / 2, margin), height - margin - text_h)
    if font is not None:
        draw.text((x - left, y - top), design.text, font=font, fill=design.text_colour)
    else:
        for i in range(len(design.text)):
            gx = x + i * size * 1.05
            draw.rounded_rectangle((gx, y, gx + size * 0.9, y + size), radius=size * 0.15, fill=design.text_colour)
    underline_y = y + text_h + size * 0.35
    draw.rectangle((x, underline_y, x + text_w * 0.4, underline_y + max(1, size * 0.12)), fill=design.subject_colour)


def render_poster(design: PosterDesign, width: int, height: int) -> Image.Image:
    """Draw a design at ``width`` x ``height`` (supersampled, then downscaled for smooth edges)."""
    big_w, big_h = width * SUPERSAMPLE, height * SUPERSAMPLE
    canvas = _gradient(design, big_w, big_h)
    draw = ImageDraw.Draw(canvas)
    for decoration in design.decorations:
        _draw_decoration(draw, decoration, big_w, big_h)
    radius = design.subject_scale * min(big_w, big_h) / 2
    _draw_subject(draw, design.subject_shape, design.subject_x * big_w, design.subject_y * big_h, radius, design.subject_colour)
    _draw_text(draw, design, big_w, big_h)
    image = canvas.resize((width, height), Image.Resampling.LANCZOS)
    if design.saturation != 1.0:
        image = ImageEnhance.Color(image).enhance(design.saturation)
    if design.grain > 0:
        noise = np.random.default_rng(design.grain_seed).normal(0, design.grain, (height, width, 1))
        image = Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8), "RGB")
    return image.filter(ImageFilter.SMOOTH_MORE) if design.saturation < 0.5 else image


class PosterRenderer:
    """Embedded-default ``ImageGenerator``: no GPU, no weights, deterministic.

    A (prompt, seed) fixes the design whatever the size, so one seed at two ratios is a
    seed family: the same poster laid out for two formats."""

    seed_families = True

    @property
    def name(self) -> str:
        return RENDERER_NAME

    @property
    def params(self) -> dict[str, object]:
        return {"renderer": RENDERER_NAME, "supersample": SUPERSAMPLE}

    def generate(self, requests: list[GenerationRequest]) -> list[Image.Image]:
        return [render_poster(design_poster(r.prompt, r.seed), r.width, r.height) for r in requests]
