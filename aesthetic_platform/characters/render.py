"""Procedural anime-style characters: a folder-per-class dataset with real signal and no download.

A character is a fixed design (hair colour and shape, eye colour, skin, outfit and its
colour, an accessory); every image of it varies what must not identify it (pose, scale,
position, background, lighting, mirroring). Designs come from one seeded sequence, so
``character_specs(n, seed)`` is always a prefix of ``character_specs(n + k, seed)``: the
characters past a training set's ``n`` are unseen ones of the same world, which is what
the new-class and unknown tests need. Each new design differs from every earlier one in
at least ``MIN_DIFFERENCES`` attributes, so classes stay separable at small sizes.

``describe(spec)`` gives the one-line text of a design; ``attributes`` picks which parts
it mentions, so a caller can make partial, less informative texts.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from aesthetic_platform.atomic import write_json, write_with
from aesthetic_platform.characters.config import RenderConfig

HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (30, 28, 36), "brown": (110, 70, 40), "blonde": (240, 210, 110), "silver": (200, 205, 215),
    "pink": (245, 140, 190), "blue": (60, 110, 230), "red": (205, 40, 45), "green": (60, 170, 90),
    "purple": (140, 80, 200), "orange": (245, 140, 40), "white": (248, 248, 248), "teal": (40, 170, 170),
}
HAIR_SHAPES = ("short", "long", "twin tails", "ponytail", "bob", "spiky")
EYE_COLOURS: dict[str, tuple[int, int, int]] = {
    "blue": (40, 100, 230), "green": (40, 170, 60), "red": (210, 30, 40), "amber": (230, 150, 20),
    "violet": (140, 60, 210), "brown": (100, 60, 30), "grey": (130, 135, 145), "gold": (240, 210, 40),
}
SKIN_TONES: dict[str, tuple[int, int, int]] = {"fair": (255, 228, 210), "warm": (240, 200, 165), "tan": (205, 150, 110)}
OUTFITS = ("sailor uniform", "hoodie", "suit", "dress", "kimono", "armour")
OUTFIT_COLOURS: dict[str, tuple[int, int, int]] = {
    "navy": (30, 40, 100), "crimson": (170, 20, 40), "white": (240, 240, 240), "black": (25, 25, 30),
    "yellow": (240, 210, 50), "green": (40, 130, 60), "sky-blue": (120, 190, 240), "magenta": (200, 40, 160),
}
ACCESSORIES = ("none", "ribbon", "glasses", "hat", "cat ears", "halo", "horns", "headphones")
_SHAPE_WORDS = {"short": "short", "long": "long", "twin tails": "twin-tailed", "ponytail": "ponytailed", "bob": "bobbed",
                "spiky": "spiky"}
#: The attributes of a design, in the order ``describe`` mentions them.
ATTRIBUTES = ("hair_colour", "hair_shape", "eye_colour", "skin", "outfit", "outfit_colour", "accessory")
#: Every new design differs from all earlier ones in at least this many attributes (when the space allows).
MIN_DIFFERENCES = 3
_DESIGN_ATTEMPTS = 2000
CANVAS = 256  # the character is drawn on this grid, then scaled, rotated and placed


@dataclass(frozen=True)
class CharacterSpec:
    """One character's design: what identifies it in every image."""

    index: int
    name: str
    hair_colour: str
    hair_shape: str
    eye_colour: str
    skin: str
    outfit: str
    outfit_colour: str
    accessory: str

    def attributes(self) -> dict[str, str]:
        return {a: getattr(self, a) for a in ATTRIBUTES}

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class RenderSummary:
    """What ``render_dataset`` wrote: the characters, their descriptions, and images per character."""

    out_dir: Path
    characters: list[CharacterSpec]
    descriptions: dict[str, str]
    counts: dict[str, int]
    image_size: int
    config: dict[str, object] = field(default_factory=dict)

    @property
    def images(self) -> int:
        return sum(self.counts.values())

    def class_dir(self, name: str) -> Path:
        return self.out_dir / name


def character_name(index: int) -> str:
    """Folder (class) name of the character at ``index``: sortable, stable across dataset sizes."""
    return f"character_{index:03d}"


def _differences(a: dict[str, str], b: dict[str, str]) -> int:
    return sum(a[k] != b[k] for k in ATTRIBUTES)


def character_specs(n: int, seed: int = 0, start: int = 0) -> list[CharacterSpec]:
    """The designs ``start .. start + n - 1`` of the seeded sequence (a prefix never depends on ``n``)."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be non-negative, got n={n}, start={start}")
    rng = random.Random(f"characters-{seed}")
    chosen: list[dict[str, str]] = []
    while len(chosen) < start + n:
        best: dict[str, str] | None = None
        best_min = -1
        for _ in range(_DESIGN_ATTEMPTS):
            candidate = {
                "hair_colour": rng.choice(list(HAIR_COLOURS)), "hair_shape": rng.choice(HAIR_SHAPES),
                "eye_colour": rng.choice(list(EYE_COLOURS)), "skin": rng.choice(list(SKIN_TONES)),
                "outfit": rng.choice(OUTFITS), "outfit_colour": rng.choice(list(OUTFIT_COLOURS)),
                "accessory": rng.choice(ACCESSORIES),
            }
            nearest = min((_differences(candidate, c) for c in chosen), default=len(ATTRIBUTES))
            if nearest > best_min:
                best, best_min = candidate, nearest
            if nearest >= MIN_DIFFERENCES:
                break
        assert best is not None
        chosen.append(best)
    return [CharacterSpec(index=i, name=character_name(i), **chosen[i]) for i in range(start, start + n)]


def describe(spec: CharacterSpec, attributes: Sequence[str] | None = None) -> str:
    """One line of text about a design; ``attributes`` limits what it mentions (default: everything)."""
    wanted = set(ATTRIBUTES if attributes is None else attributes)
    unknown = wanted - set(ATTRIBUTES)
    if unknown:
        raise ValueError(f"unknown attributes {sorted(unknown)}; known: {list(ATTRIBUTES)}")
    parts = []
    hair = " ".join(x for x, a in ((_SHAPE_WORDS[spec.hair_shape], "hair_shape"), (spec.hair_colour, "hair_colour")) if a in wanted)
    if hair:
        parts.append(f"{hair} hair")
    if "eye_colour" in wanted:
        parts.append(f"{spec.eye_colour} eyes")
    if "skin" in wanted:
        parts.append(f"{spec.skin} skin")
    outfit = " ".join(x for x, a in ((spec.outfit_colour, "outfit_colour"), (spec.outfit, "outfit")) if a in wanted)
    if outfit:
        parts.append(f"a {outfit}" if "outfit" in wanted else f"{outfit} clothes")
    if "accessory" in wanted:
        parts.append("no accessory" if spec.accessory == "none" else f"{'' if spec.accessory.endswith('s') else 'a '}{spec.accessory}")
    if not parts:
        return "an anime character"
    return "an anime character with " + (", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else parts[0])


# --- drawing -----------------------------------------------------------------------------


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(max(0, min(255, int(c * factor))) for c in colour)  # type: ignore[return-value]


def _draw_back_hair(d: ImageDraw.ImageDraw, spec: CharacterSpec, hair: tuple[int, int, int]) -> None:
    dark = _shade(hair, 0.8)
    if spec.hair_shape == "long":
        d.rounded_rectangle((62, 60, 194, 235), radius=40, fill=dark)
    elif spec.hair_shape == "twin tails":
        d.ellipse((28, 70, 78, 230), fill=dark)
        d.ellipse((178, 70, 228, 230), fill=dark)
        d.ellipse((60, 56, 84, 80), fill=_shade(hair, 0.6))
        d.ellipse((172, 56, 196, 80), fill=_shade(hair, 0.6))
    elif spec.hair_shape == "ponytail":
        d.polygon([(170, 70), (232, 110), (226, 200), (188, 150)], fill=dark)
    elif spec.hair_shape == "bob":
        d.rounded_rectangle((58, 48, 198, 172), radius=45, fill=dark)
    elif spec.hair_shape == "spiky":
        for x in range(58, 200, 24):
            d.polygon([(x, 80), (x + 24, 80), (x + 12 + (x % 3 - 1) * 10, 18)], fill=dark)


def _draw_outfit(d: ImageDraw.ImageDraw, spec: CharacterSpec, skin: tuple[int, int, int]) -> None:
    colour = OUTFIT_COLOURS[spec.outfit_colour]
    accent = (235, 235, 235) if sum(colour) < 400 else (40, 40, 60)
    d.rectangle((114, 160, 142, 190), fill=_shade(skin, 0.92))  # neck
    torso = [(60, 256), (74, 196), (104, 184), (152, 184), (182, 196), (196, 256)]
    d.polygon(torso, fill=colour)
    if spec.outfit == "sailor uniform":
        d.polygon([(86, 188), (128, 232), (170, 188), (188, 210), (128, 250), (68, 210)], fill=(245, 245, 245))
        d.polygon([(116, 214), (140, 214), (128, 246)], fill=(200, 30, 40))
    elif spec.outfit == "hoodie":
        d.ellipse((86, 170, 170, 206), outline=_shade(colour, 0.6), width=6)
        d.rectangle((98, 226, 158, 252), outline=_shade(colour, 0.6), width=4)
        d.line((118, 196, 116, 228), fill=accent, width=3)
        d.line((138, 196, 140, 228), fill=accent, width=3)
    elif spec.outfit == "suit":
        d.polygon([(106, 186), (150, 186), (128, 240)], fill=(245, 245, 245))
        d.polygon([(122, 196), (134, 196), (138, 236), (128, 246), (118, 236)], fill=accent)
        d.polygon([(74, 196), (106, 186), (128, 240), (96, 256)], fill=_shade(colour, 0.8))
        d.polygon([(182, 196), (150, 186), (128, 240), (160, 256)], fill=_shade(colour, 0.8))
    elif spec.outfit == "dress":
        d.rectangle((60, 196, 196, 206), fill=skin)
        for x in range(70, 190, 16):
            d.ellipse((x, 198, x + 18, 216), fill=_shade(colour, 1.25))
        d.line((100, 184, 96, 200), fill=colour, width=5)
        d.line((156, 184, 160, 200), fill=colour, width=5)
    elif spec.outfit == "kimono":
        d.line((104, 186, 150, 244), fill=accent, width=8)
        d.line((152, 186, 118, 228), fill=accent, width=8)
        d.rectangle((64, 232, 192, 250), fill=_shade(colour, 0.55))
    elif spec.outfit == "armour":
        d.polygon(torso, fill=(150, 155, 165))
        d.ellipse((62, 184, 110, 224), fill=(185, 190, 200), outline=colour, width=6)
        d.ellipse((146, 184, 194, 224), fill=(185, 190, 200), outline=colour, width=6)
        d.polygon([(110, 206), (146, 206), (128, 250)], fill=colour)


def _draw_head(d: ImageDraw.ImageDraw, spec: CharacterSpec, hair: tuple[int, int, int], skin: tuple[int, int, int], mouth: int) -> None:
    d.ellipse((72, 52, 184, 176), fill=skin)
    # bangs and crown
    d.chord((66, 36, 190, 140), start=180, end=360, fill=hair)
    for x in range(74, 182, 18):
        d.polygon([(x, 84), (x + 22, 84), (x + 11, 108)], fill=hair)
    if spec.hair_shape == "spiky":
        for x in range(70, 186, 20):
            d.polygon([(x, 60), (x + 20, 60), (x + 10, 28)], fill=hair)
    if spec.hair_shape in ("long", "bob", "twin tails"):
        d.rectangle((66, 84, 80, 150), fill=hair)
        d.rectangle((176, 84, 190, 150), fill=hair)
    eye = EYE_COLOURS[spec.eye_colour]
    for cx in (104, 152):
        d.ellipse((cx - 15, 112, cx + 15, 148), fill=(255, 255, 255), outline=(40, 30, 30), width=2)
        d.ellipse((cx - 12, 116, cx + 12, 146), fill=eye)
        d.ellipse((cx - 5, 124, cx + 5, 138), fill=_shade(eye, 0.35))
        d.ellipse((cx - 9, 118, cx - 2, 125), fill=(255, 255, 255))
        d.line((cx - 16, 110, cx + 16, 108), fill=_shade(hair, 0.6), width=3)
    d.arc((118, 152, 138, 162 + mouth), start=10, end=170, fill=(150, 50, 60), width=2)


def _draw_accessory(d: ImageDraw.ImageDraw, spec: CharacterSpec, hair: tuple[int, int, int]) -> None:
    a = spec.accessory
    if a == "ribbon":
        colour = (220, 30, 70) if spec.hair_colour not in ("red", "pink") else (40, 80, 220)
        d.polygon([(150, 30), (190, 12), (190, 52)], fill=colour)
        d.polygon([(150, 30), (110, 12), (110, 52)], fill=colour)
        d.ellipse((142, 22, 158, 38), fill=_shade(colour, 0.7))
    elif a == "glasses":
        for cx in (104, 152):
            d.ellipse((cx - 20, 108, cx + 20, 152), outline=(20, 20, 20), width=4)
        d.line((124, 128, 132, 128), fill=(20, 20, 20), width=4)
    elif a == "hat":
        d.polygon([(128, -10), (84, 56), (172, 56)], fill=(60, 30, 90))
        d.ellipse((50, 46, 206, 70), fill=(60, 30, 90))
        d.rectangle((90, 44, 166, 54), fill=(240, 200, 40))
    elif a == "cat ears":
        d.polygon([(76, 66), (86, 6), (122, 44)], fill=hair)
        d.polygon([(180, 66), (170, 6), (134, 44)], fill=hair)
        d.polygon([(84, 54), (90, 20), (110, 44)], fill=(250, 170, 190))
        d.polygon([(172, 54), (166, 20), (146, 44)], fill=(250, 170, 190))
    elif a == "halo":
        d.ellipse((78, 4, 178, 30), outline=(255, 220, 60), width=7)
    elif a == "horns":
        d.polygon([(86, 50), (70, 2), (104, 40)], fill=(90, 60, 50))
        d.polygon([(170, 50), (186, 2), (152, 40)], fill=(90, 60, 50))
    elif a == "headphones":
        d.arc((62, 24, 194, 150), start=180, end=360, fill=(40, 40, 40), width=9)
        d.rounded_rectangle((54, 96, 78, 140), radius=8, fill=(230, 60, 60))
        d.rounded_rectangle((178, 96, 202, 140), radius=8, fill=(230, 60, 60))


def draw_character(spec: CharacterSpec, mouth: int = 0) -> Image.Image:
    """The character on a transparent ``CANVAS``×``CANVAS`` layer, frontal and unscaled."""
    layer = Image.new("RGBA", (CANVAS, CANVAS), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)
    hair = HAIR_COLOURS[spec.hair_colour]
    skin = SKIN_TONES[spec.skin]
    _draw_back_hair(d, spec, hair)
    _draw_outfit(d, spec, skin)
    _draw_head(d, spec, hair, skin, mouth)
    _draw_accessory(d, spec, hair)
    return layer


def _background(size: int, rng: random.Random) -> Image.Image:
    def colour() -> tuple[int, int, int]:
        return (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255))

    kind = rng.choice(("solid", "gradient", "stripes", "dots", "checks"))
    a, b = colour(), colour()
    image = Image.new("RGB", (size, size), a)
    d = ImageDraw.Draw(image)
    if kind == "gradient":
        for y in range(size):
            t = y / max(1, size - 1)
            d.line((0, y, size, y), fill=tuple(int(a[i] * (1 - t) + b[i] * t) for i in range(3)))
    elif kind == "stripes":
        step = rng.randint(max(4, size // 16), max(5, size // 5))
        for x in range(-size, size, step * 2):
            d.polygon([(x, 0), (x + step, 0), (x + step + size, size), (x + size, size)], fill=b)
    elif kind == "dots":
        r = max(2, size // rng.randint(20, 40))
        for _ in range(rng.randint(10, 40)):
            x, y = rng.randint(0, size), rng.randint(0, size)
            d.ellipse((x - r, y - r, x + r, y + r), fill=b)
    elif kind == "checks":
        step = max(4, size // rng.randint(4, 10))
        for y in range(0, size, step):
            for x in range((y // step) % 2 * step, size, step * 2):
                d.rectangle((x, y, x + step - 1, y + step - 1), fill=b)
    return image


def _light(image: Image.Image, strength: float, rng: random.Random) -> Image.Image:
    if strength <= 0:
        return image
    image = ImageEnhance.Brightness(image).enhance(1 + rng.uniform(-strength, strength))
    image = ImageEnhance.Contrast(image).enhance(1 + rng.uniform(-strength, strength) * 0.6)
    tint = Image.new("RGB", image.size, (rng.randint(0, 255), rng.randint(0, 255), rng.randint(0, 255)))
    image = Image.blend(image, tint, rng.uniform(0, strength * 0.3))
    # a directional light: one side brighter than the other
    ramp = Image.linear_gradient("L").resize(image.size).rotate(rng.uniform(0, 360))
    shade = Image.new("RGB", image.size, (0, 0, 0))
    mask = ramp.point(lambda v: int(v * strength * 0.5))
    return Image.composite(shade, image, mask)


def render_image(spec: CharacterSpec, size: int, rng: random.Random, config: RenderConfig | None = None) -> Image.Image:
    """One image of ``spec``: the design under a random pose, scale, position, background and lighting."""
    config = config or RenderConfig(image_size=size)
    layer = draw_character(spec, mouth=rng.randint(0, 6))
    if rng.random() < 0.5:
        layer = ImageOps.mirror(layer)
    scale = rng.uniform(config.scale_min, config.scale_max)
    side = max(8, int(size * scale))
    layer = layer.resize((side, side), Image.Resampling.BICUBIC)
    layer = layer.rotate(rng.uniform(-12, 12) * config.pose_jitter, resample=Image.Resampling.BICUBIC, expand=True)
    image = _background(size, rng)
    jitter = config.pose_jitter * 0.12 * size
    x = int((size - layer.width) / 2 + rng.uniform(-jitter, jitter))
    y = int(size - layer.height * 0.95 + rng.uniform(0, jitter))  # standing at the bottom edge, head room varies
    image.paste(layer, (x, y), layer)
    return _light(image, config.lighting, rng)


def _save_png(path: Path, image: Image.Image) -> None:
    write_with(path, lambda p: image.save(p, format="PNG"))


def render_dataset(out_dir: Path, config: RenderConfig) -> RenderSummary:
    """Write ``<out_dir>/<character>/<i>.png`` for ``config.characters`` designs (from ``config.first_character``)
    and ``<out_dir>/characters.json`` with every design and its description. Files are written atomically;
    files of the same names are replaced, others are left alone (render into a fresh folder for a clean set)."""
    out_dir = Path(out_dir)
    specs = character_specs(config.characters, config.seed, config.first_character)
    counts: dict[str, int] = {}
    for spec in specs:
        folder = out_dir / spec.name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(config.images_per_character):
            rng = random.Random(f"{config.image_seed}-{config.seed}-{spec.index}-{i}")
            image = render_image(spec, config.image_size, rng, config)
            _save_png(folder / f"{i:04d}.png", image)
        counts[spec.name] = config.images_per_character
    descriptions = {s.name: describe(s) for s in specs}
    write_json(out_dir / CHARACTERS_FILE, {
        "config": config.model_dump(), "characters": [{**s.as_dict(), "description": descriptions[s.name]} for s in specs],
    })
    return RenderSummary(out_dir, specs, descriptions, counts, config.image_size, config.model_dump())


#: The designs and descriptions of a rendered dataset, beside the class folders.
CHARACTERS_FILE = "characters.json"


def load_characters(dataset_dir: Path) -> dict[str, CharacterSpec]:
    """The designs of a rendered dataset by class name (empty when the folder was not rendered here)."""
    import json

    path = Path(dataset_dir) / CHARACTERS_FILE
    if not path.exists():
        return {}
    records = json.loads(path.read_text())["characters"]
    fields = set(CharacterSpec.__dataclass_fields__)
    return {r["name"]: CharacterSpec(**{k: v for k, v in r.items() if k in fields}) for r in records}


def contact_sheet(images: Sequence[Image.Image], columns: int = 8, cell: int = 96) -> Image.Image:
    """Images in a grid, for plots and previews."""
    rows = max(1, math.ceil(len(images) / columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for k, image in enumerate(images):
        sheet.paste(image.convert("RGB").resize((cell, cell)), ((k % columns) * cell, (k // columns) * cell))
    return sheet
