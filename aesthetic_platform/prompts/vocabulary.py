"""The objective elements a poster prompt can name, in English and Chinese.

The grammar writes prompts from this vocabulary, the poster renderer follows it, and
the heuristic judge reads it back out of any prompt text (grammar, LLM or uploaded)
with ``parse_elements`` — never from generator metadata.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

#: canonical colour -> (RGB, English words, Chinese words)
COLOURS: dict[str, tuple[tuple[int, int, int], tuple[str, ...], tuple[str, ...]]] = {
    "red": ((214, 40, 40), ("red", "crimson", "scarlet"), ("红色", "大红", "绯红")),
    "orange": ((245, 130, 32), ("orange",), ("橙色", "暖橙")),
    "gold": ((222, 178, 60), ("gold", "golden"), ("金色", "金黄")),
    "yellow": ((250, 214, 60), ("yellow", "lemon"), ("黄色", "柠檬黄")),
    "green": ((46, 160, 90), ("green", "emerald"), ("绿色", "翠绿")),
    "teal": ((24, 150, 150), ("teal", "cyan", "turquoise"), ("青色", "蓝绿")),
    "blue": ((40, 90, 200), ("blue", "azure", "cobalt"), ("蓝色", "湛蓝")),
    "navy": ((20, 34, 90), ("navy", "midnight"), ("藏青", "深蓝")),
    "purple": ((128, 60, 170), ("purple", "violet"), ("紫色", "紫罗兰")),
    "pink": ((240, 120, 170), ("pink", "rose"), ("粉色", "玫瑰粉")),
    "white": ((245, 245, 240), ("white", "ivory"), ("白色", "象牙白")),
    "black": ((20, 20, 24), ("black", "charcoal"), ("黑色", "炭黑")),
    "silver": ((180, 186, 196), ("silver", "grey", "gray"), ("银色", "灰色")),
}

#: curated palettes: (canonical colours, English phrase, Chinese phrase)
PALETTES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("orange", "gold", "red"), "warm orange, gold and red", "暖橙色、金色与红色"),
    (("blue", "teal", "white"), "cool blue, teal and white", "蓝色、青色与白色"),
    (("navy", "gold"), "navy and gold", "藏青与金色"),
    (("pink", "purple", "white"), "pink, purple and white", "粉色、紫色与白色"),
    (("green", "yellow", "white"), "fresh green, yellow and white", "绿色、黄色与白色"),
    (("black", "red", "silver"), "black, red and silver", "黑色、红色与银色"),
    (("teal", "orange"), "teal and orange", "青色与橙色"),
    (("purple", "gold", "navy"), "purple, gold and navy", "紫色、金色与深蓝"),
)

#: canonical layout -> (English phrase, Chinese phrase, extra words that also mean it)
LAYOUTS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "centered": ("centered composition", "居中构图", ("center", "centred", "中心", "居中")),
    "thirds": ("rule-of-thirds composition", "三分法构图", ("rule of thirds", "三分")),
    "left": ("subject on the left, text on the right", "主体在左、文字在右", ("left-aligned", "左侧")),
    "right": ("subject on the right, text on the left", "主体在右、文字在左", ("right-aligned", "右侧")),
    "diagonal": ("dynamic diagonal layout", "对角线动感布局", ("diagonal", "对角")),
    "top_heavy": ("headline at the top, subject below", "标题在上、主体在下", ("headline at the top", "标题在上")),
}

#: subject -> (English, Chinese, shape the renderer draws)
SUBJECTS: dict[str, tuple[str, str, str]] = {
    "sneaker": ("a running sneaker", "一双跑鞋", "ellipse"),
    "perfume": ("a perfume bottle", "一瓶香水", "bottle"),
    "phone": ("a smartphone", "一部智能手机", "rounded_rect"),
    "coffee": ("a cup of coffee", "一杯咖啡", "cup"),
    "mooncake": ("a mooncake gift box", "月饼礼盒", "circle"),
    "car": ("an electric car", "一辆电动汽车", "capsule"),
    "lantern": ("a paper lantern", "一盏灯笼", "circle"),
    "headphones": ("wireless headphones", "无线耳机", "arc"),
    "tea": ("a pot of jasmine tea", "一壶茉莉花茶", "cup"),
    "mountain": ("a mountain landscape", "山峦风景", "triangle"),
}

#: style -> (English, Chinese)
STYLES: dict[str, tuple[str, str]] = {
    "3d": ("3D render", "3D渲染"),
    "flat": ("flat vector illustration", "扁平矢量插画"),
    "minimal": ("minimalist design", "极简设计"),
    "guochao": ("Chinese guochao style", "国潮风格"),
    "cyberpunk": ("cyberpunk neon style", "赛博朋克霓虹风格"),
    "watercolor": ("watercolor style", "水彩风格"),
    "photo": ("photorealistic product shot", "写实产品摄影"),
}

#: category -> (English, Chinese)
CATEGORIES: dict[str, tuple[str, str]] = {
    "key_visual": ("key visual", "主视觉KV"),
    "poster": ("poster", "海报"),
    "banner": ("e-commerce banner", "电商横幅"),
}

#: slogans in both languages (the renderer draws Latin text; CJK slogans become text blocks)
SLOGANS: tuple[tuple[str, str], ...] = (
    ("Run Further", "跑得更远"),
    ("Taste the Moment", "品味此刻"),
    ("Light Up the Night", "点亮夜晚"),
    ("Made for Tomorrow", "为明天而生"),
    ("Pure Sound", "纯净之声"),
    ("Festival Sale", "节日大促"),
    ("New Arrival", "新品上市"),
    ("Breathe Nature", "呼吸自然"),
)


@dataclass(frozen=True)
class Elements:
    """Objective elements found in a prompt text."""

    palette: tuple[str, ...]
    layout: str
    subject: str
    style: str = ""


def _position(text: str, word: str) -> int:
    """Index of ``word`` in ``text``; Latin words must stand alone ("red" is not in "centered")."""
    if word.isascii():
        match = re.search(rf"(?<![a-z]){re.escape(word.lower())}(?![a-z])", text)
        return match.start() if match else -1
    return text.find(word)


def _find_all(text: str, words_by_key: Mapping[str, tuple[str, ...]]) -> list[str]:
    lowered = text.lower()
    hits: list[tuple[int, str]] = []
    for key, words in words_by_key.items():
        positions = [p for p in (_position(lowered, w) for w in words if w) if p >= 0]
        if positions:
            hits.append((min(positions), key))
    return [key for _, key in sorted(hits)]


def parse_elements(text: str) -> Elements:
    """Palette colours, layout, subject and style named in any prompt text, in order of mention."""
    colour_words = {k: (*en, *zh) for k, (_, en, zh) in COLOURS.items()}
    palette = _find_all(text, colour_words)
    layout_words = {k: (en, zh, *extra) for k, (en, zh, extra) in LAYOUTS.items()}
    layouts = _find_all(text, layout_words)
    subject_words = {k: (en.split(" ", 1)[-1], zh) for k, (en, zh, _) in SUBJECTS.items()}
    subjects = _find_all(text, subject_words)
    styles = _find_all(text, {k: (k, en, zh) for k, (en, zh) in STYLES.items()})
    return Elements(
        tuple(palette), layouts[0] if layouts else "", subjects[0] if subjects else "", styles[0] if styles else ""
    )
